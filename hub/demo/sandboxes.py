"""The sandboxes of the systems the pipeline calls, as the demo, tests and benchmarks see them
(over HTTP: their /_ endpoints)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from adapters.control import SandboxControl, control_url
from hub.core.registry import REGISTRY
from hub.settings import Settings, get_settings


@dataclass(frozen=True)
class Sandboxes:
    urls: dict[str, str]

    @classmethod
    def from_settings(cls, settings: Settings) -> Sandboxes:
        # The sandboxes of the systems this hub's pipeline calls (an optional step that is off
        # has none running).
        return cls(
            {
                name: settings.systems[name].url
                for name in REGISTRY.systems_of(settings.pipeline.steps)
            }
        )

    def control(self, system: str) -> SandboxControl:
        return SandboxControl(control_url(self.urls[system]), timeout=10)

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
                e["idempotency_key"] for e in self.ledger(REGISTRY.system_of(step))["effects"]
            )
            for step in get_settings().pipeline.steps
        }
