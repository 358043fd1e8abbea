"""The three sandbox systems together, as the demo, tests and benchmarks see them."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from adapters.sandbox import SandboxControl
from hub.core.pipeline import STEPS, SYSTEM_OF_STEP
from hub.settings import Settings


@dataclass(frozen=True)
class Sandboxes:
    urls: dict[str, str]

    @classmethod
    def from_settings(cls, settings: Settings) -> Sandboxes:
        return cls(
            {
                "erp": settings.erp_url,
                "warehouse": settings.warehouse_url,
                "accounting": settings.accounting_url,
            }
        )

    def control(self, system: str) -> SandboxControl:
        return SandboxControl(self.urls[system], timeout=10)

    def ledger(self, system: str) -> dict[str, Any]:
        return self.control(system).ledger()

    def set_faults(self, system: str, **faults: Any) -> None:
        self.control(system).set_faults(**faults)

    def clear_faults(self) -> None:
        for system in self.urls:
            self.control(system).clear_faults()

    def set_stock(self, levels: dict[str, int]) -> None:
        self.control("erp").set_stock(levels)

    def effects_per_key(self) -> dict[str, Counter[str]]:
        """For each step, how many effects each ``order_id:step`` key has in its system's ledger."""
        return {
            step: Counter(
                e["idempotency_key"] for e in self.ledger(SYSTEM_OF_STEP[step])["effects"]
            )
            for step in STEPS
        }
