"""Reconciling (``hub reconcile``): do the hub's records and the downstream systems' effects agree?

The hub's rows (orders, step outcomes with their downstream ids) are compared with what each
system says it applied, per ``<order id>:<step>`` idempotency key: the sandbox ledgers
(``GET /_ledger``) are the oracle, and for a system driven through Tryton its own sales,
shipments and invoices (``adapters.tryton.ledger``). Any order where the two disagree is
printed, and the exit code is 1. With ``--at-rest`` it also checks that nothing is left
half-way: every order completed, or failed with its failure either open (waiting for an
operator) or discarded by one, cancelled, closed by an operator, or cancelling with a
compensation's failure open; and no outbox row unsent.

Compensations are checked too, per ``<order id>:<step>:compensate`` key: no cancelled order
keeps a live effect downstream (every step of it that succeeded has exactly one compensation,
undoing the effect the hub recorded), and no compensation was applied that the hub does not
count as done. The chaos suite and its slice in the tests run the same check.

What it cannot check it says, rather than calling it a disagreement: a sandbox keeps its ledger
in memory, so a step that succeeded before the sandbox (re)started has no effect to compare
with (``NotChecked``).

The comparison itself is a pure function (``compare``), tested with a table of cases.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from adapters.control import SandboxControl, control_url
from adapters.tryton.ledger import read_effects
from adapters.tryton.rpc import TrytonConnection, TrytonRpc
from hub.core.registry import REGISTRY
from hub.core.statuses import FailureState, OrderStatus, StepStatus
from hub.db.engine import unit_of_work
from hub.db.models import Failure, Order, OutboxMessage, StepOutcome
from hub.services.orders import find_order
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
LIVE_EFFECT = "live_effect"  # a cancelled order whose step's effect was never compensated
DUPLICATE_COMPENSATION = "duplicate_compensation"  # an effect undone more than once
COMPENSATION_MISMATCH = "compensation_mismatch"  # the compensation undid another effect
COMPENSATION_WITHOUT_RECORD = "compensation_without_record"  # undone downstream, not here

# Why each problem happens and what to do, for the operator reading the table.
WHY = {
    MISSING_EFFECT: "the hub recorded a success the system has no trace of, after the system's "
    "ledger began: look the downstream id up in the system",
    EFFECT_WITHOUT_SUCCESS: "the system applied a write the hub does not count as done (its "
    "answer was lost and the retries ran out, or the order was given up): replaying the "
    "failure sends the same idempotency key and records the effect the system made",
    DUPLICATE_EFFECT: "the system applied one idempotency key more than once: its "
    "idempotency failed; undo the extra effect in the system",
    ID_MISMATCH: "the hub kept another downstream id than the system made for this key: "
    "check both ids in the system",
    UNKNOWN_ORDER: "the system holds effects for an order this hub's database does not have: "
    "another hub (or a test) writes to the same system, or the database was reset",
    UNSETTLED: "the order is neither completed nor failed with a failure record: still under "
    "way (wait and run it again) or stuck (hub timeline <order>, hub doctor)",
    INCONSISTENT: "the order is completed although one of its steps did not succeed",
    UNSENT_OUTBOX: "outbox rows were never published: is a relay running (make relay)?",
    LIVE_EFFECT: "the order is cancelled but this step's effect was never undone downstream: "
    "undo it in the system (release, cancel, credit) and note it in the order's timeline",
    DUPLICATE_COMPENSATION: "the system applied one compensation key more than once: its "
    "idempotency failed; check the system's records of the undo",
    COMPENSATION_MISMATCH: "the compensation undid another effect than the one the hub "
    "recorded for this step: check both ids in the system",
    COMPENSATION_WITHOUT_RECORD: "the system undid this step but the hub does not count the "
    "compensation as done (its answer was lost and the retries ran out): replay its failure",
}

# A compensation still under way: its effect may be ahead of the hub's record of it.
COMPENSATION_UNDER_WAY = ("pending", "running", "error")


@dataclass(frozen=True)
class StepRecord:
    order_id: str
    step: str
    status: str
    downstream_id: str | None
    # When the hub last wrote the row (epoch seconds): a succeeded step's moment of success.
    updated_at: float = 0.0
    # Its compensation (None: never asked for) and what undid it downstream.
    compensation_status: str | None = None
    compensation_id: str | None = None


@dataclass(frozen=True)
class Effect:
    order_id: str
    step: str
    id: str
    at: float


@dataclass(frozen=True)
class Compensation:
    """A compensation effect in a ledger: ``compensates`` is the id of the effect it undid."""

    order_id: str
    step: str
    id: str
    compensates: str
    at: float


@dataclass(frozen=True)
class OrderRecord:
    order_id: str
    status: str
    open_failures: frozenset[str]  # steps with an open failure record
    # The order's own pipeline (empty: judge by the step rows the order has).
    pipeline: tuple[str, ...] = ()
    # Steps whose failure an operator decided on without replaying (discarded, cancelled, closed).
    discarded: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Discrepancy:
    order_id: str
    step: str
    problem: str
    detail: str


@dataclass(frozen=True)
class NotChecked:
    """Succeeded steps of one step name that predate their system's ledger."""

    step: str
    count: int
    ledger_started: float


@dataclass(frozen=True)
class Rest:
    """Where the orders checked by ``--at-rest`` came to rest."""

    completed: int = 0
    waiting: int = 0  # failed (or cancelling) with an open failure: an operator's decision is due
    discarded: int = 0  # failed, and an operator discarded the failure
    cancelled: int = 0  # cancelled: every step it did was undone
    closed: int = 0  # ended by an operator as it stood


@dataclass(frozen=True)
class Report:
    found: list[Discrepancy]
    counted: dict[str, int]
    not_checked: list[NotChecked]
    rest: Rest | None  # None unless the at-rest check ran


class UnknownOrder(LookupError):
    """An --order reference that is neither an order id nor an external id the hub knows."""


def predates_ledger(record: StepRecord, ledger_started: Mapping[str, float]) -> bool:
    """A succeeded step whose system's ledger began after it: the ledger cannot know it."""
    return record.status == StepStatus.SUCCEEDED and record.updated_at < ledger_started.get(
        record.step, 0.0
    )


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


def parse_compensations(step: str, ledger: Mapping[str, Any]) -> list[Compensation]:
    """The compensations of one system's ledger that undo ``step`` (their key:
    ``<order>:<step>:compensate``)."""
    found = []
    suffix = f":{step}:compensate"
    for entry in ledger.get("effects", []):
        key = str(entry.get("idempotency_key", ""))
        if key.endswith(suffix):
            found.append(
                Compensation(
                    key[: -len(suffix)],
                    step,
                    str(entry.get("id", "")),
                    str(entry.get("compensates", "")),
                    float(entry.get("at") or 0),
                )
            )
    return found


def compare_compensations(
    orders: Iterable[OrderRecord],
    steps: Iterable[StepRecord],
    compensations: Iterable[Compensation],
    *,
    now: float,
    grace: float = DEFAULT_GRACE_SECONDS,
    only: Collection[str] | None = None,
    ledger_started: Mapping[str, float] | None = None,
) -> list[Discrepancy]:
    """Every (order, step) whose compensation the hub and the system disagree on: a cancelled
    order's step left live, an effect undone twice or the wrong one, an undo the hub does not
    count. Steps with no compensation in the registry are not judged."""
    started = ledger_started or {}
    status = {o.order_id: o.status for o in orders}
    records = {(s.order_id, s.step): s for s in steps if only is None or s.order_id in only}
    undone: dict[tuple[str, str], list[Compensation]] = defaultdict(list)
    for c in compensations:
        if only is None or c.order_id in only:
            undone[(c.order_id, c.step)].append(c)
    found: list[Discrepancy] = []
    for key in sorted(set(records) | set(undone)):
        order_id, step = key
        record, done = records.get(key), undone.get(key, [])
        if record is None or REGISTRY.step(step).compensation is None:
            continue  # an unknown order's effects are compare()'s to report
        ids = ", ".join(c.id for c in done)
        if len(done) > 1:
            found.append(
                Discrepancy(order_id, step, DUPLICATE_COMPENSATION, f"undone {len(done)} times")
            )
        if done and record.downstream_id not in {c.compensates for c in done}:
            found.append(
                Discrepancy(
                    order_id,
                    step,
                    COMPENSATION_MISMATCH,
                    f"hub kept {record.downstream_id}, the compensation undid "
                    f"{', '.join(c.compensates for c in done)}",
                )
            )
        if done and record.compensation_status != "succeeded":
            under_way = record.compensation_status in COMPENSATION_UNDER_WAY and all(
                now - c.at < grace for c in done
            )
            if not under_way:
                found.append(
                    Discrepancy(
                        order_id,
                        step,
                        COMPENSATION_WITHOUT_RECORD,
                        f"compensation {record.compensation_status}: {ids}",
                    )
                )
        if (
            status.get(order_id) == "cancelled"
            and record.status == StepStatus.SUCCEEDED
            and not done
            and record.updated_at >= started.get(step, 0.0)
        ):
            found.append(
                Discrepancy(
                    order_id,
                    step,
                    LIVE_EFFECT,
                    f"cancelled, {record.downstream_id} not undone "
                    f"(hub: compensation {record.compensation_status})",
                )
            )
    return found


def compare(
    steps: Iterable[StepRecord],
    effects: Iterable[Effect],
    *,
    now: float,
    grace: float = DEFAULT_GRACE_SECONDS,
    only: Collection[str] | None = None,
    ledger_started: Mapping[str, float] | None = None,
) -> list[Discrepancy]:
    """Every (order, step) where the hub's record and the downstream effects disagree.

    ``only`` limits the check to these order ids (effects of other orders are then ignored,
    rather than reported as unknown). ``ledger_started`` (per step: when its system's ledger
    began) excuses a succeeded step with no effect that predates it: not checkable, not a
    disagreement (``not_checked`` counts those).
    """
    started = ledger_started or {}
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
            if not done and predates_ledger(record, started):
                continue
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


def not_checked(
    steps: Iterable[StepRecord],
    effects: Iterable[Effect],
    ledger_started: Mapping[str, float],
    *,
    only: Collection[str] | None = None,
) -> list[NotChecked]:
    """Per step: the succeeded steps without an effect that predate their system's ledger."""
    applied = {(e.order_id, e.step) for e in effects}
    counts: dict[str, int] = defaultdict(int)
    for record in steps:
        if only is not None and record.order_id not in only:
            continue
        key = (record.order_id, record.step)
        if key not in applied and predates_ledger(record, ledger_started):
            counts[record.step] += 1
    return [NotChecked(step, n, ledger_started[step]) for step, n in sorted(counts.items())]


def where_they_rest(orders: Iterable[OrderRecord]) -> Rest:
    """How many orders rest where: completed, cancelled, closed, waiting for a decision,
    discarded."""
    counts: dict[str, int] = defaultdict(int)
    for order in orders:
        if order.status in (OrderStatus.COMPLETED, OrderStatus.CANCELLED, OrderStatus.CLOSED):
            counts[order.status] += 1
        elif order.status in _MAY_WAIT and order.open_failures:
            counts["waiting"] += 1
        elif order.status == OrderStatus.FAILED and order.discarded:
            counts["discarded"] += 1
    return Rest(
        completed=counts[OrderStatus.COMPLETED],
        waiting=counts["waiting"],
        discarded=counts["discarded"],
        cancelled=counts[OrderStatus.CANCELLED],
        closed=counts[OrderStatus.CLOSED],
    )


def _resting(order: OrderRecord) -> bool:
    """At rest other than completed: cancelled, closed, waiting for a decision, discarded."""
    return (
        order.status in (OrderStatus.CANCELLED, OrderStatus.CLOSED)
        or (order.status in _MAY_WAIT and bool(order.open_failures))
        or (order.status == OrderStatus.FAILED and bool(order.discarded))
    )


# An order in one of these with an open failure waits for an operator (a failed step, or a
# compensation that failed for good): at rest, as far as the hub goes.
_MAY_WAIT = (OrderStatus.FAILED, OrderStatus.CANCELLING)


def settlement(
    orders: Iterable[OrderRecord], steps: Iterable[StepRecord], *, unsent_outbox: int
) -> list[Discrepancy]:
    """Orders left half-way (or completed with a step not done), and unsent outbox rows.

    At rest: completed with every step of its pipeline done; cancelled or closed; failed (or
    cancelling) with an open failure (an operator's decision is due); failed with its failure
    discarded (the operator decided).
    """
    by_order: dict[str, dict[str, str]] = defaultdict(dict)
    for s in steps:
        by_order[s.order_id][s.step] = s.status
    found: list[Discrepancy] = []
    for order in orders:
        statuses = by_order.get(order.order_id, {})
        if order.status == "completed":
            # The steps of the order's own pipeline, whatever the registry holds today.
            own = order.pipeline or tuple(statuses)
            undone = [step for step in own if statuses.get(step) != StepStatus.SUCCEEDED]
            if undone:
                found.append(
                    Discrepancy(
                        order.order_id, ",".join(undone), INCONSISTENT, "completed, step not done"
                    )
                )
        elif not _resting(order):
            reason = "no open failure record" if order.status == "failed" else "still under way"
            found.append(Discrepancy(order.order_id, "", UNSETTLED, f"{order.status}: {reason}"))
    if unsent_outbox:
        found.append(Discrepancy("", "", UNSENT_OUTBOX, f"{unsent_outbox} row(s) never sent"))
    return found


# ---- reading the hub's rows and the ledgers ---------------------------------------------------


def resolve_orders(session: Session, refs: Iterable[str]) -> set[str]:
    """Order ids for ``--order`` values: order ids or external ids (as ``hub timeline``).

    Raises ``UnknownOrder`` for one the hub does not know, ``AmbiguousOrder`` for an external
    id several senders use."""
    ids = set()
    for ref in refs:
        order = find_order(session, ref.strip(), sender=None)
        if order is None:
            raise UnknownOrder(f"no order has id or external id {ref!r}")
        ids.add(str(order.id))
    return ids


def load_steps(session: Session, only: Collection[str] | None = None) -> list[StepRecord]:
    query = select(
        StepOutcome.order_id,
        StepOutcome.step,
        StepOutcome.status,
        StepOutcome.downstream_id,
        StepOutcome.updated_at,
        StepOutcome.compensation_status,
        StepOutcome.compensation_id,
    )
    if only is not None:
        query = query.where(StepOutcome.order_id.in_([uuid.UUID(i) for i in only]))
    return [
        StepRecord(
            str(row.order_id),
            row.step,
            row.status,
            row.downstream_id,
            row.updated_at.timestamp() if row.updated_at else 0,
            row.compensation_status,
            row.compensation_id,
        )
        for row in session.execute(query)
    ]


def load_orders(session: Session, only: Collection[str] | None = None) -> list[OrderRecord]:
    query = select(Order.id, Order.status, Order.pipeline)
    failures = select(Failure.order_id, Failure.step, Failure.state).where(
        Failure.state != FailureState.REPLAYED
    )
    if only is not None:
        ids = [uuid.UUID(i) for i in only]
        query = query.where(Order.id.in_(ids))
        failures = failures.where(Failure.order_id.in_(ids))
    steps_by_state: dict[tuple[str, str], set[str]] = defaultdict(set)
    for order_id, step, state in session.execute(failures):
        steps_by_state[(str(order_id), state)].add(step)
    return [
        OrderRecord(
            str(order_id),
            status,
            frozenset(steps_by_state.get((str(order_id), "open"), ())),
            tuple(pipeline or ()),
            frozenset(
                step
                for state in _DECIDED
                for step in steps_by_state.get((str(order_id), state), ())
            ),
        )
        for order_id, status, pipeline in session.execute(query)
    ]


# Failure states an operator ends a failure in without replaying it.
_DECIDED = (FailureState.DISCARDED, FailureState.CANCELLED, FailureState.CLOSED)


def count_unsent(session: Session) -> int:
    query = select(func.count()).select_from(OutboxMessage).where(OutboxMessage.sent_at.is_(None))
    return int(session.scalar(query) or 0)


class LedgerUnavailable(Exception):
    """A system's ledger could not be read (a real system has none: this is a sandbox check)."""


@dataclass(frozen=True)
class Ledgers:
    effects: list[Effect]
    started_at: dict[str, float]  # per step: when its system's ledger began (0: not said)
    compensations: list[Compensation] = field(default_factory=list)


def load_ledgers(settings: Settings, only: Collection[str] | None = None) -> Ledgers:
    """Each step's effects from its system: a sandbox's ledger, or Tryton's own records for a
    system whose adapter is ``tryton`` (read once for all of them; they outlive a restart, so
    nothing is older than them)."""
    urls = {name: system.url for name, system in settings.systems.items()}
    effects: list[Effect] = []
    compensations: list[Compensation] = []
    started: dict[str, float] = {}
    tryton_steps: dict[str, str] = {}  # system -> step
    for step in settings.pipeline.steps:  # only the steps this hub runs have a sandbox
        system = REGISTRY.system_of(step)
        if settings.system(system).adapter == "tryton":
            tryton_steps[system] = step
            continue
        where = control_url(urls[system])
        try:
            ledger = SandboxControl(where, timeout=30).ledger()
        except Exception as exc:
            raise LedgerUnavailable(
                f"cannot read the {system} ledger at {where}/_ledger: {exc} "
                "(reconcile reads the sandbox's ledger; a real system has none)"
            ) from exc
        effects.extend(parse_effects(step, ledger))
        compensations.extend(parse_compensations(step, ledger))
        started[step] = float(ledger.get("started_at") or 0)
    if tryton_steps:
        effects.extend(load_tryton_effects(settings, tryton_steps, only))
    return Ledgers(effects, started, compensations)


def load_tryton_effects(
    settings: Settings, steps_of: Mapping[str, str], only: Collection[str] | None
) -> list[Effect]:
    """What Tryton holds for the steps of ``steps_of`` (system -> step), by the sale's
    reference (the hub's order id)."""
    tryton = settings.tryton
    rpc = TrytonRpc(
        TrytonConnection(
            url=tryton.url,
            database=tryton.database,
            user=tryton.user,
            password=tryton.password.get_secret_value(),
            connect_timeout=tryton.connect_timeout,
            read_timeout=tryton.read_timeout,
        )
    )
    try:
        found = read_effects(rpc, only)
    except Exception as exc:
        raise LedgerUnavailable(
            f"cannot read Tryton's sales, shipments and invoices at {tryton.url} "
            f"(database {tryton.database}): {exc}"
        ) from exc
    return [
        Effect(effect.order_id, steps_of[effect.system], effect.id, effect.at)
        for effect in found
        if effect.system in steps_of
    ]


def report(
    settings: Settings,
    *,
    only: Collection[str] | None = None,
    at_rest: bool = False,
    grace: float = DEFAULT_GRACE_SECONDS,
) -> Report:
    """Discrepancies, what was checked (orders, steps, effects) and what could not be."""
    ledgers = load_ledgers(settings, only)
    effects = ledgers.effects
    with unit_of_work() as session:
        steps = load_steps(session, only)
        orders = load_orders(session, only)
        unsent = count_unsent(session) if at_rest else 0
    now = time.time()
    found = compare(
        steps, effects, now=now, grace=grace, only=only, ledger_started=ledgers.started_at
    )
    found += compare_compensations(
        orders,
        steps,
        ledgers.compensations,
        now=now,
        grace=grace,
        only=only,
        ledger_started=ledgers.started_at,
    )
    if at_rest:
        found += settlement(orders, steps, unsent_outbox=unsent)
    counted = {
        "orders": len({s.order_id for s in steps}),
        "steps_succeeded": sum(1 for s in steps if s.status == "succeeded"),
        "effects": sum(1 for e in effects if only is None or e.order_id in only),
        "compensations": sum(
            1 for c in ledgers.compensations if only is None or c.order_id in only
        ),
    }
    return Report(
        found,
        counted,
        not_checked(steps, effects, ledgers.started_at, only=only),
        where_they_rest(orders) if at_rest else None,
    )


def check(
    settings: Settings,
    *,
    only: Collection[str] | None = None,
    at_rest: bool = False,
    grace: float = DEFAULT_GRACE_SECONDS,
) -> tuple[list[Discrepancy], dict[str, int]]:
    """Discrepancies and what was checked (orders, steps, effects)."""
    done = report(settings, only=only, at_rest=at_rest, grace=grace)
    return done.found, done.counted
