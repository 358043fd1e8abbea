"""What one demo run knows (settings, console, run id, its intake key) and the orders it posts."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import requests
from rich.console import Console

from hub.settings import Settings

SKUS = [f"SKU-{n:03d}" for n in range(1, 11)]

# How long the demo keeps offering an order the intake turns back for now (503 while its
# database is away or its pool is busy, 429): a sender's patience, not a test's timeout.
BUSY_PATIENCE_S = 120.0


@dataclass(frozen=True)
class DemoRun:
    settings: Settings
    console: Console
    run_id: str
    # The demo's own intake key ("demo" sender), made at start and revoked at the end.
    api_key: str = field(default="", repr=False)
    # The ERP's stock, as the failure scene sets it: the sandbox's by default; a real ERP's
    # (Tryton's, ``python -m sandbox.tryton.demo``) when the demo runs against one.
    set_stock: Callable[[Mapping[str, int]], None] | None = None
    scarce_sku: str = "SKU-020"

    @property
    def api_url(self) -> str:
        return f"http://{self.settings.api_host}:{self.settings.api_port}"

    @property
    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


def sample_order(run: DemoRun, n: int, *, sku: str | None = None) -> dict[str, object]:
    return {
        "external_id": f"DEMO-{run.run_id}-{n:04d}",
        "customer": {
            "id": f"C-{n % 37:03d}",
            "name": f"Customer {n}",
            "email": f"customer{n}@example.com",
        },
        "ship_to": {
            "name": f"Customer {n}",
            "line1": f"{n} Demo Street",
            "city": "Lyon",
            "postal_code": "69001",
            "country": "FR",
        },
        "currency": "EUR",
        "lines": [
            {"sku": sku or SKUS[n % len(SKUS)], "qty": 1 + n % 3, "unit_price": "12.50"},
            {"sku": SKUS[(n + 3) % len(SKUS)], "qty": 1, "unit_price": "3.99"},
        ],
    }


def post_order(session: requests.Session | None, run: DemoRun, order: Mapping[str, object]) -> str:
    """POST one order as a well-behaved sender does: a 503 or 429 is offered again after its
    Retry-After (the intake stored nothing; the external id makes a repeat harmless), anything
    else that is not a 2xx is raised. The order's id."""
    post = (session or requests).post
    deadline = time.monotonic() + BUSY_PATIENCE_S
    while True:
        reply = post(f"{run.api_url}/orders", json=order, headers=run.auth_headers, timeout=10)
        if reply.status_code not in (429, 503) or time.monotonic() > deadline:
            reply.raise_for_status()
            return str(reply.json()["order_id"])
        time.sleep(_retry_after(reply))


def _retry_after(reply: requests.Response) -> float:
    """The reply's Retry-After in seconds (1 when absent or a date), at most 10."""
    try:
        return min(max(float(reply.headers.get("Retry-After", "1")), 0.1), 10.0)
    except ValueError:
        return 1.0
