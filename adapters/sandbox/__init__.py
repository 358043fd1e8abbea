"""In-process sandboxes of the ERP, warehouse and accounting systems.

They serve the contract in docs/architecture.md, "The downstream contract".
"""

from __future__ import annotations

from adapters.sandbox.control import SandboxControl
from adapters.sandbox.server import DEFAULT_TOKENS, SYSTEMS, Sandbox, run_sandbox

__all__ = ["DEFAULT_TOKENS", "SYSTEMS", "Sandbox", "SandboxControl", "run_sandbox"]
