"""After the storm: wait for the hub to settle, then the exactly-once check.

Passed when every accepted order is completed or failed with an open failure record (its
reason), each ledger holds exactly one effect per order and succeeded step with the id the hub
kept (``hub reconcile --settled``), no outbox row is unsent and the work queues are empty.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench import records, state
from hub.services import reconcile
from hub.services.reconcile import Discrepancy
from hub.settings import get_settings

LOSS = (reconcile.MISSING_EFFECT, reconcile.UNSETTLED, reconcile.UNSENT_OUTBOX)
DOUBLE = (reconcile.DUPLICATE_EFFECT,)


@dataclass
class Verdict:
    accepted: int
    statuses: Counter[str]
    not_found: int  # accepted (the sender got an order id) but no such order in the database
    discrepancies: list[Discrepancy]
    queue_depths: dict[str, int]
    settle_seconds: float
    events: Counter[str] = field(default_factory=Counter)

    def problems(self, kinds: tuple[str, ...]) -> int:
        return sum(1 for d in self.discrepancies if d.problem in kinds)

    @property
    def lost(self) -> int:
        return self.not_found + self.problems(LOSS)

    @property
    def doubled(self) -> int:
        return self.problems(DOUBLE)

    @property
    def passed(self) -> bool:
        return (
            not self.discrepancies and self.not_found == 0 and not any(self.queue_depths.values())
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "accepted": self.accepted,
            "statuses": dict(self.statuses),
            "not_found": self.not_found,
            "lost": self.lost,
            "applied_twice": self.doubled,
            "discrepancies": [d.__dict__ for d in self.discrepancies[:200]],
            "queue_depths": self.queue_depths,
            "settle_seconds": round(self.settle_seconds, 1),
            "events": dict(self.events),
        }


def settled(accepted: set[str]) -> bool:
    found = records.statuses_of(accepted)
    if len(found) < len(accepted):
        return False
    if any(status not in ("completed", "failed") for status in found.values()):
        return False
    return records.unsent_outbox() == 0 and not any(state.queue_depths().values())


def wait_settled(accepted: set[str], *, timeout: float) -> float:
    """Seconds until every accepted order finished and nothing is left to publish or run."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            if settled(accepted):
                return time.monotonic() - started
        except Exception:  # a service still coming back: ask again
            pass
        time.sleep(1)
    return time.monotonic() - started


def judge(accepted: set[str], *, settle_timeout: float) -> Verdict:
    seconds = wait_settled(accepted, timeout=settle_timeout)
    found = records.statuses_of(accepted)
    discrepancies, _ = reconcile.check(get_settings(), settled=True, grace=0)
    return Verdict(
        accepted=len(accepted),
        statuses=Counter(found.values()),
        not_found=len(accepted) - len(found),
        discrepancies=discrepancies,
        queue_depths=state.queue_depths(),
        settle_seconds=seconds,
        events=records.event_counts(),
    )
