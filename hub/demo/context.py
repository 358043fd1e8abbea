"""What one demo run knows (settings, console, run id, its intake key) and the orders it posts."""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.console import Console

from hub.settings import Settings

SKUS = [f"SKU-{n:03d}" for n in range(1, 11)]


@dataclass(frozen=True)
class DemoRun:
    settings: Settings
    console: Console
    run_id: str
    # The demo's own intake key ("demo" sender), made at start and revoked at the end.
    api_key: str = field(default="", repr=False)

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
