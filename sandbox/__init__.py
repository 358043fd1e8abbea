"""Stand-ins for the downstream systems: the demo, tests and benchmarks use them (not shipped).

The HTTP sandboxes of the ERP, warehouse and accounting systems serve the contract in
docs/architecture.md, "The downstream contract"; any other system's sandbox is its own module
(``sandbox/<system>.py``), and ``tryton`` a real ERP. ``python -m sandbox`` serves them on the
configured URLs. The hub never imports this package (an import-linter contract in
pyproject.toml): it reads a sandbox's ledger over HTTP (``adapters.control``), as it would any
system's.
"""

from __future__ import annotations

from adapters.control import SandboxControl
from sandbox.server import DEFAULT_TOKENS, SYSTEMS, Sandbox, run_sandbox

__all__ = ["DEFAULT_TOKENS", "SYSTEMS", "Sandbox", "SandboxControl", "run_sandbox"]
