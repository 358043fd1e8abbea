"""Drive a sandbox through its /_ endpoints (health, ledger, faults, stock) over HTTP.

The hub reads a ledger this way (reconcile, the demo) and never imports the sandbox package:
the endpoints are documented in docs/architecture.md, a real system has none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import requests


def control_url(system_url: str) -> str:
    """Where a system's sandbox answers its /_ endpoints: an HTTP system's own URL; a system
    reached over another protocol (``smtp://host:port``) on HTTP at the next port."""
    where = urlsplit(system_url)
    if where.scheme in ("http", "https"):
        return system_url.rstrip("/")
    if not where.hostname or not where.port:
        raise ValueError(f"a sandbox URL needs a host and a port: {system_url!r}")
    host = f"[{where.hostname}]" if ":" in where.hostname else where.hostname
    return f"http://{host}:{where.port + 1}"


class SandboxControl:
    """Faults, stock and ledger of one sandbox server, over HTTP."""

    def __init__(self, base_url: str, *, timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def health(self) -> dict[str, Any]:
        """{"system", "status"}; raises if the server does not answer."""
        return self._call("GET", "/_health")

    def ledger(self) -> dict[str, Any]:
        """{"system", "calls", "effects": [...]}."""
        return self._call("GET", "/_ledger")

    def faults(self) -> dict[str, Any]:
        """The faults in force."""
        return self._call("GET", "/_faults")

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        """Replace the faults in force (error_rate, status, latency_ms, down, retry_after, ...)."""
        return self._call("POST", "/_faults", faults)

    def clear_faults(self) -> dict[str, Any]:
        """Break nothing any more."""
        return self._call("DELETE", "/_faults")

    def set_stock(self, levels: Mapping[str, int]) -> dict[str, Any]:
        """Set on-hand stock per sku (ERP only)."""
        return self._call("POST", "/_stock", dict(levels))

    def _call(self, method: str, path: str, body: object = None) -> dict[str, Any]:
        response = requests.request(method, self.base_url + path, json=body, timeout=self.timeout)
        response.raise_for_status()
        payload: dict[str, Any] = response.json()
        return payload
