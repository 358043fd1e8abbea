"""After the storm: wait for the hub to settle, then the exactly-once check.

Passed when every accepted order is completed or failed with an open failure record (its
reason), each ledger holds exactly one effect per order and succeeded step with the id the hub
kept (``hub reconcile --at-rest``), no outbox row is unsent and the work queues are empty.

With cancellations in the load, the sandboxes' ledgers are also read directly, not through the
hub's view of them (``judge_ledgers``): every order whose cancel was taken (202) ends
``cancelled``, each effect it had downstream undone exactly once by a compensation naming that
effect; every other order has no compensation, and no effect twice. "Dangling" is an effect left
live for a cancelled order, or a compensation without its effect.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench import records, state
from bench.chaos.cancels import TAKEN, Asked, summary
from hub.core.registry import REGISTRY
from hub.demo.sandboxes import Sandboxes
from hub.services import reconcile
from hub.services.reconcile import Discrepancy
from hub.settings import get_settings

LOSS = (reconcile.MISSING_EFFECT, reconcile.UNSETTLED, reconcile.UNSENT_OUTBOX)
DOUBLE = (reconcile.DUPLICATE_EFFECT, reconcile.DUPLICATE_COMPENSATION)
DANGLING = (
    reconcile.LIVE_EFFECT,
    reconcile.COMPENSATION_WITHOUT_RECORD,
    reconcile.COMPENSATION_MISMATCH,
)
# Where an order may rest once the hub has settled.
ENDED = ("completed", "failed", "cancelled")

# What the ledgers can say is wrong with an order's step (``judge_ledgers``).
LOST, TWICE, LIVE, NOT_CANCELLED = "lost", "twice", "dangling", "not_cancelled"


@dataclass(frozen=True)
class LedgerProblem:
    order_id: str
    step: str  # "" for the order as a whole (not_cancelled)
    problem: str
    detail: str


def judge_ledgers(
    effects: dict[str, list[dict[str, Any]]],
    statuses: dict[str, str],
    cancelled: set[str],
    *,
    undoable: set[str],
) -> list[LedgerProblem]:
    """The ledgers' own account of each order (``effects``: each step's system's entries).

    ``cancelled``: orders whose cancel the hub took; ``undoable``: steps with a compensation.
    A pure function: the table of cases is in tests/unit/test_chaos_ledgers.py.
    """
    by_key: dict[str, list[dict[str, Any]]] = {}
    for entries in effects.values():
        for entry in entries:
            by_key.setdefault(entry["idempotency_key"], []).append(entry)
    found: list[LedgerProblem] = []
    for order_id, status in sorted(statuses.items()):
        if order_id in cancelled and status != "cancelled":
            found.append(LedgerProblem(order_id, "", NOT_CANCELLED, f"cancel taken, {status}"))
        for step in effects:
            done = by_key.get(f"{order_id}:{step}", [])
            undo = by_key.get(f"{order_id}:{step}:compensate", [])
            if len(done) > 1:
                found.append(LedgerProblem(order_id, step, TWICE, f"applied {len(done)} times"))
            if len(undo) > 1:
                found.append(LedgerProblem(order_id, step, TWICE, f"undone {len(undo)} times"))
            if order_id not in cancelled:
                if undo:
                    found.append(LedgerProblem(order_id, step, LIVE, "undone, not cancelled"))
                elif status == "completed" and not done:
                    found.append(LedgerProblem(order_id, step, LOST, "completed, no effect"))
                continue
            if done and not undo and step in undoable:
                found.append(LedgerProblem(order_id, step, LIVE, "effect left live"))
            elif undo and not done:
                found.append(LedgerProblem(order_id, step, LIVE, "compensation without effect"))
            elif done and undo and undo[0].get("compensates") != done[0]["id"]:
                found.append(
                    LedgerProblem(order_id, step, LIVE, "the compensation undid another effect")
                )
    return found


@dataclass
class Verdict:
    accepted: int
    statuses: Counter[str]
    not_found: int  # accepted (the sender got an order id) but no such order in the database
    discrepancies: list[Discrepancy]
    queue_depths: dict[str, int]
    settle_seconds: float
    events: Counter[str] = field(default_factory=Counter)
    # The cancellations in the load (answers, and those that found a step in flight) and what
    # the ledgers say of every order (empty when the run cancelled nothing).
    cancels: Counter[str] = field(default_factory=Counter)
    ledger: list[LedgerProblem] = field(default_factory=list)

    def problems(self, kinds: tuple[str, ...]) -> int:
        return sum(1 for d in self.discrepancies if d.problem in kinds)

    def _both(self, kinds: tuple[str, ...], ledger: str) -> int:
        """Order steps found by reconcile or by the ledgers (each counted once)."""
        pairs = {(d.order_id, d.step) for d in self.discrepancies if d.problem in kinds}
        pairs |= {(p.order_id, p.step) for p in self.ledger if p.problem == ledger}
        return len(pairs)

    @property
    def lost(self) -> int:
        return self.not_found + self._both(LOSS, LOST)

    @property
    def doubled(self) -> int:
        return self._both(DOUBLE, TWICE)

    @property
    def dangling(self) -> int:
        return self._both(DANGLING, LIVE)

    @property
    def not_cancelled(self) -> int:
        return sum(1 for p in self.ledger if p.problem == NOT_CANCELLED)

    @property
    def passed(self) -> bool:
        return (
            not self.discrepancies
            and not self.ledger
            and self.not_found == 0
            and not any(self.queue_depths.values())
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "accepted": self.accepted,
            "statuses": dict(self.statuses),
            "not_found": self.not_found,
            "lost": self.lost,
            "applied_twice": self.doubled,
            "dangling": self.dangling,
            "cancels": dict(self.cancels),
            "cancel_taken_not_cancelled": self.not_cancelled,
            "ledger_problems": [p.__dict__ for p in self.ledger[:200]],
            "discrepancies": [d.__dict__ for d in self.discrepancies[:200]],
            "queue_depths": self.queue_depths,
            "settle_seconds": round(self.settle_seconds, 1),
            "events": dict(self.events),
        }


def settled(accepted: set[str]) -> bool:
    found = records.statuses_of(accepted)
    if len(found) < len(accepted):
        return False
    if any(status not in ENDED for status in found.values()):
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


def judge(
    accepted: set[str],
    *,
    settle_timeout: float,
    sandbox: Sandboxes | None = None,
    cancels: list[Asked] | None = None,
) -> Verdict:
    """Wait until settled, then check; with ``sandbox``, its ledgers are judged directly too
    (``cancels``: the load's cancellations, if any)."""
    seconds = wait_settled(accepted, timeout=settle_timeout)
    found = records.statuses_of(accepted)
    discrepancies, _ = reconcile.check(get_settings(), at_rest=True, grace=0)
    ledger: list[LedgerProblem] = []
    asked = cancels or []
    if sandbox is not None:
        steps = get_settings().pipeline.steps
        effects = {step: sandbox.ledger(REGISTRY.system_of(step))["effects"] for step in steps}
        taken = {a.order_id for a in asked if a.code == TAKEN}
        # A cancel never answered may or may not have been taken: the order's end says which.
        unanswered = {a.order_id for a in asked if a.code == 0}
        taken |= {o for o in unanswered if found.get(o) in ("cancelling", "cancelled")}
        undoable = {step for step in steps if REGISTRY.step(step).compensation is not None}
        ledger = judge_ledgers(effects, found, taken, undoable=undoable)
    counts = summary(asked)
    if asked:
        counts["found_a_step_in_flight"] = records.cancelled_in_flight()
    return Verdict(
        accepted=len(accepted),
        statuses=Counter(found.values()),
        not_found=len(accepted) - len(found),
        discrepancies=discrepancies,
        queue_depths=state.queue_depths(),
        settle_seconds=seconds,
        events=records.event_counts(),
        cancels=counts,
        ledger=ledger,
    )
