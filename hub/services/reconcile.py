"""Reconciling (``hub reconcile``): do the hub's records and the downstream systems' effects agree?

The hub's rows (orders, step outcomes with their downstream ids) are compared with what each
system says it applied, per ``<order id>:<step>`` idempotency key: the sandbox ledgers
(``GET /_ledger``) are the oracle. Any order where the two disagree is printed, and the exit
code is 1. With ``--settled`` it also checks that nothing is left half-way: every order
completed or failed with an open failure record, no outbox row unsent. The chaos suite and its
slice in the tests run the same check.

The comparison itself is a pure function (``compare``), tested with a table of cases.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from adapters.sandbox import SandboxControl
from hub.core.pipeline import STEPS, SYSTEM_OF_STEP
from hub.db.engine import unit_of_work
from hub.db.models import Failure, Order, OutboxMessage, StepOutcome
from hub.settings import Settings

# An effect this young whose step is still under way (running, or waiting for a retry after a
# lost answer) is the hub being busy, not a disagreement.
DEFAULT_GRACE_SECONDS = 30.0

MISSING_EFFECT = "missing_effect"  # the hub says succeeded, the system applied nothing
EFFECT_WITHOUT_SUCCESS = "effect_without_success"  # applied downstream, not succeeded here
DUPLICATE_EFFECT = "duplicate_effect"  # applied more than once
ID_MISMATCH = "id_mismatch"  # the hub kept another downstream id than the system made
UNKNOWN_ORDER = "unknown_order"  # an effect for an order the hub has no record of
UNSETTLED = "unsettled"  # neither completed nor failed with an open failure
INCONSISTENT = "inconsistent"  # completed although a step did not succeed
UNSENT_OUTBOX = "unsent_outbox"  # an outbox row never published


@dataclass(frozen=True)
class StepRecord:
    order_id: str
    step: str
    status: str
    downstream_id: str | None


@dataclass(frozen=True)
class Effect:
    order_id: str
    step: str
    id: str
    at: float


@dataclass(frozen=True)
class OrderRecord:
    order_id: str
    status: str
    open_failures: frozenset[str]  # steps with an open failure record


@dataclass(frozen=True)
class Discrepancy:
    order_id: str
    step: str
    problem: str
    detail: str


def parse_effects(step: str, ledger: Mapping[str, Any]) -> list[Effect]:
    """The effects of one system's ledger that belong to ``step`` (by their key)."""
    effects = []
    for entry in ledger.get("effects", []):
        order_id, _, key_step = str(entry.get("idempotency_key", "")).rpartition(":")
        if key_step == step:
            effects.append(
                Effect(order_id, step, str(entry.get("id", "")), float(entry.get("at") or 0))
            )
    return effects


def compare(
    steps: Iterable[StepRecord],
    effects: Iterable[Effect],
    *,
    now: float,
    grace: float = DEFAULT_GRACE_SECONDS,
    only: Collection[str] | None = None,
) -> list[Discrepancy]:
    """Every (order, step) where the hub's record and the downstream effects disagree.

    ``only`` limits the check to these order ids (effects of other orders are then ignored,
    rather than reported as unknown).
    """
    records = {(s.order_id, s.step): s for s in steps if only is None or s.order_id in only}
    known_orders = {order_id for order_id, _ in records}
    applied: dict[tuple[str, str], list[Effect]] = defaultdict(list)
    for effect in effects:
        if only is None or effect.order_id in only:
            applied[(effect.order_id, effect.step)].append(effect)
    found: list[Discrepancy] = []
    for key in sorted(set(records) | set(applied)):
        order_id, step = key
        record, done = records.get(key), applied.get(key, [])
        if record is None:
            if order_id not in known_orders:
                found.append(Discrepancy(order_id, step, UNKNOWN_ORDER, f"{len(done)} effect(s)"))
            else:
                found.append(Discrepancy(order_id, step, EFFECT_WITHOUT_SUCCESS, "no step row"))
            continue
        ids = ", ".join(e.id for e in done)
        if len(done) > 1:
            found.append(
                Discrepancy(order_id, step, DUPLICATE_EFFECT, f"applied {len(done)} times: {ids}")
            )
        if record.status == "succeeded":
            if not done:
                found.append(
                    Discrepancy(
                        order_id, step, MISSING_EFFECT, f"succeeded as {record.downstream_id}"
                    )
                )
            elif record.downstream_id not in {e.id for e in done}:
                found.append(
                    Discrepancy(
                        order_id,
                        step,
                        ID_MISMATCH,
                        f"hub kept {record.downstream_id}, the system made {ids}",
                    )
                )
        elif done:
            in_flight = record.status in ("running", "error", "pending") and all(
                now - e.at < grace for e in done
            )
            if not in_flight:
                found.append(
                    Discrepancy(
                        order_id, step, EFFECT_WITHOUT_SUCCESS, f"step {record.status}: {ids}"
                    )
                )
    return found


def settlement(
    orders: Iterable[OrderRecord], steps: Iterable[StepRecord], *, unsent_outbox: int
) -> list[Discrepancy]:
    """Orders left half-way (or completed with a step not done), and unsent outbox rows."""
    by_order: dict[str, dict[str, str]] = defaultdict(dict)
    for s in steps:
        by_order[s.order_id][s.step] = s.status
    found: list[Discrepancy] = []
    for order in orders:
        statuses = by_order.get(order.order_id, {})
        if order.status == "completed":
            undone = [step for step in STEPS if statuses.get(step) != "succeeded"]
            if undone:
                found.append(
                    Discrepancy(
                        order.order_id, ",".join(undone), INCONSISTENT, "completed, step not done"
                    )
                )
        elif order.status == "failed" and order.open_failures:
            continue
        else:
            reason = "no open failure record" if order.status == "failed" else "still under way"
            found.append(Discrepancy(order.order_id, "", UNSETTLED, f"{order.status}: {reason}"))
    if unsent_outbox:
        found.append(Discrepancy("", "", UNSENT_OUTBOX, f"{unsent_outbox} row(s) never sent"))
    return found


# ---- reading the hub's rows and the ledgers ---------------------------------------------------


def load_steps(session: Session, only: Collection[str] | None = None) -> list[StepRecord]:
    query = select(
        StepOutcome.order_id, StepOutcome.step, StepOutcome.status, StepOutcome.downstream_id
    )
    if only is not None:
        query = query.where(StepOutcome.order_id.in_([uuid.UUID(i) for i in only]))
    return [
        StepRecord(str(order_id), step, status, downstream_id)
        for order_id, step, status, downstream_id in session.execute(query)
    ]


def load_orders(session: Session, only: Collection[str] | None = None) -> list[OrderRecord]:
    query = select(Order.id, Order.status)
    failures = select(Failure.order_id, Failure.step).where(Failure.state == "open")
    if only is not None:
        ids = [uuid.UUID(i) for i in only]
        query = query.where(Order.id.in_(ids))
        failures = failures.where(Failure.order_id.in_(ids))
    open_steps: dict[str, set[str]] = defaultdict(set)
    for order_id, step in session.execute(failures):
        open_steps[str(order_id)].add(step)
    return [
        OrderRecord(str(order_id), status, frozenset(open_steps.get(str(order_id), ())))
        for order_id, status in session.execute(query)
    ]


def count_unsent(session: Session) -> int:
    query = select(func.count()).select_from(OutboxMessage).where(OutboxMessage.sent_at.is_(None))
    return int(session.scalar(query) or 0)


class LedgerUnavailable(Exception):
    """A system's ledger could not be read (a real system has none: this is a sandbox check)."""


def load_effects(settings: Settings) -> list[Effect]:
    urls = {
        "erp": settings.erp_url,
        "warehouse": settings.warehouse_url,
        "accounting": settings.accounting_url,
    }
    effects: list[Effect] = []
    for step in STEPS:
        system = SYSTEM_OF_STEP[step]
        try:
            ledger = SandboxControl(urls[system], timeout=30).ledger()
        except Exception as exc:
            raise LedgerUnavailable(
                f"cannot read the {system} ledger at {urls[system]}/_ledger: {exc}"
            ) from exc
        effects.extend(parse_effects(step, ledger))
    return effects


def check(
    settings: Settings,
    *,
    only: Collection[str] | None = None,
    settled: bool = False,
    grace: float = DEFAULT_GRACE_SECONDS,
) -> tuple[list[Discrepancy], dict[str, int]]:
    """Discrepancies and what was checked (orders, steps, effects)."""
    effects = load_effects(settings)
    with unit_of_work() as session:
        steps = load_steps(session, only)
        orders = load_orders(session, only) if settled else []
        unsent = count_unsent(session) if settled else 0
    found = compare(steps, effects, now=time.time(), grace=grace, only=only)
    if settled:
        found += settlement(orders, steps, unsent_outbox=unsent)
    counted = {
        "orders": len({s.order_id for s in steps}),
        "steps_succeeded": sum(1 for s in steps if s.status == "succeeded"),
        "effects": sum(1 for e in effects if only is None or e.order_id in only),
    }
    return found, counted
