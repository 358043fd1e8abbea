"""The hub's records of compensations: the ``StepStore`` that undoes a cancelled order's steps.

A compensation runs through the same ``run_step`` as a step (breaker, limits, retry policy), so
this store answers the same questions: may it start, and what came of it. Its records are the
``compensation_*`` columns of the step's own row. The rule, checked under the locks of every
step row of the order and then the order's row (the lock order of the step statements too):

- the order is ``cancelling`` (anything else refuses: only a cancel reopens compensation);
- no step of the order is in flight (running, or an attempt failed with its retry to come): one
  that is finishes first (``Wait``, no attempt spent), and no other step starts once the order
  is cancelling (``hub.core.step_rule``);
- a step that did not succeed, has no compensation, or was compensated already is passed
  (``AlreadyDone``): the chain of compensations moves on to the step before it;
- every later step that succeeded is compensated first (reverse order), and one whose
  compensation failed for good waits for the operator (its open failure).

Once every succeeded step with a compensation is compensated, the order is ``cancelled``.
Not the hot path: a few statements in one transaction, on PostgreSQL and SQLite alike.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, selectinload

from hub.core.errors import DownstreamError
from hub.core.registry import REGISTRY
from hub.core.statuses import (
    CompensationStatus,
    FailureKind,
    FailureState,
    OrderStatus,
    StepStatus,
)
from hub.core.steps import (
    AlreadyDone,
    Begun,
    BreakerNotClosed,
    OrderNotFound,
    Outcome,
    Refused,
    RetryPlan,
    Started,
    Wait,
)
from hub.db import audit
from hub.db.engine import unit_of_work
from hub.db.models import BreakerState, Failure, Order, StepOutcome
from hub.db.step_store import (
    order_snapshot,
    record_error,
    refused_detail,
)
from hub.settings import get_settings

# A compensation waiting for a step in flight comes back this many seconds later.
IN_FLIGHT_WAIT_S = 2
# A step "running" for longer than this lost its worker (a redelivery of it is refused once the
# order is cancelling, so nothing would end it): it no longer holds the compensations back.
IN_FLIGHT_LIMIT = timedelta(minutes=5)


def locked(session: Session, order_id: uuid.UUID) -> tuple[Order, dict[str, StepOutcome]]:
    """The order and its step rows, locked: the step rows first, then the order (the order in
    which the step statements take them, so no two wait on each other)."""
    rows = session.scalars(
        select(StepOutcome)
        .where(StepOutcome.order_id == order_id)
        .order_by(StepOutcome.step)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    order = session.get(
        Order,
        order_id,
        with_for_update=True,
        populate_existing=True,
        options=[selectinload(Order.lines)],
    )
    if order is None or not rows:
        raise OrderNotFound(f"no order {order_id}")
    return order, {row.step: row for row in rows}


def in_flight(steps: Mapping[str, StepOutcome], *, now: datetime | None = None) -> list[str]:
    """The steps of an order not settled yet: running (their worker not lost), or failed an
    attempt with a retry still to come. The failed attempt may have reached the system (a
    timeout after the ERP made the reservation): its retry, with the same idempotency key,
    tells, and the compensation waits for it."""
    now = now or datetime.now(UTC)
    return [name for name, row in steps.items() if _unsettled(name, row, now)]


def _unsettled(step: str, row: StepOutcome, now: datetime) -> bool:
    since = _aware(row.updated_at)
    if row.status == StepStatus.RUNNING:
        return since > now - IN_FLIGHT_LIMIT
    if row.status == StepStatus.ERROR:
        # Its retry comes at most one backoff later; a retry lost on the way holds nothing
        # back for longer than a lost worker would.
        retry_within = timedelta(seconds=get_settings().retry_policy(step).max_delay)
        return since > now - (retry_within + IN_FLIGHT_LIMIT)
    return False


def _aware(moment: datetime) -> datetime:
    # SQLite hands datetimes back naive (they were stored in UTC).
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def to_undo(order: Order, steps: Mapping[str, StepOutcome]) -> list[str]:
    """The steps of ``order`` that succeeded, have a compensation and are not compensated yet,
    last first (the order they are undone in)."""
    return [
        name
        for name in reversed(order.pipeline)
        if name in steps
        and steps[name].status == StepStatus.SUCCEEDED
        and REGISTRY.step(name).compensation is not None
        and steps[name].compensation_status != CompensationStatus.SUCCEEDED
    ]


def finish_if_undone(session: Session, order: Order, steps: Mapping[str, StepOutcome]) -> bool:
    """Mark a cancelling order cancelled once nothing of it is in flight or left to undo."""
    if order.status != OrderStatus.CANCELLING or in_flight(steps) or to_undo(order, steps):
        return False
    order.status = OrderStatus.CANCELLED
    compensated = [name for name, row in steps.items() if row.compensation_id is not None]
    audit.record(
        session,
        audit.CANCELLED,
        order_id=order.id,
        compensated=[name for name in order.pipeline if name in compensated],
        reason=order.cancel_reason,
    )
    return True


def _breaker_closed(session: Session, system: str) -> bool:
    state = session.scalar(select(BreakerState.state).where(BreakerState.system == system))
    return state in (None, "closed")


class SqlCompensationStore:
    """Compensations' records through the ORM (one transaction per move)."""

    def __init__(self, *, breaker_window: float) -> None:
        self._window = breaker_window

    def begin(self, order_id: uuid.UUID, step: str, *, gate_passed: bool) -> Begun:
        with unit_of_work() as session:
            order, steps = locked(session, order_id)
            if step not in steps:
                raise OrderNotFound(f"order {order_id} has no step {step}")
            if order.status != OrderStatus.CANCELLING:
                return Refused(reason=f"order is {order.status}", order_status=order.status)
            if in_flight(steps):
                return Wait(IN_FLIGHT_WAIT_S)
            row = steps[step]
            pending = to_undo(order, steps)
            if step not in pending:
                if row.compensation_status == CompensationStatus.SUCCEEDED:
                    audit.record(
                        session,
                        audit.COMPENSATION_SKIPPED,
                        order_id=order_id,
                        step=step,
                        attempt=row.compensation_attempts,
                        compensation_id=row.compensation_id,
                        reason="already compensated",
                    )
                finish_if_undone(session, order, steps)
                return AlreadyDone()
            later = pending[: pending.index(step)]
            if later:
                return Refused(
                    reason=f"out of order: {', '.join(later)} not compensated",
                    order_status=order.status,
                )
            if row.compensation_status == CompensationStatus.FAILED:
                return Refused(
                    reason="its compensation failed for good: replay or close its failure",
                    order_status=order.status,
                )
            if not gate_passed and not _breaker_closed(session, REGISTRY.system_of(step)):
                return BreakerNotClosed()
            row.compensation_status = CompensationStatus.RUNNING
            row.compensation_attempts += 1
            audit.record(
                session,
                audit.COMPENSATION_STARTED,
                order_id=order_id,
                step=step,
                attempt=row.compensation_attempts,
                undoes=row.downstream_id,
            )
            done = {name: r for name, r in steps.items() if r.status == StepStatus.SUCCEEDED}
            return Started(
                order=order_snapshot(order),
                attempt=row.compensation_attempts,
                earlier={name: r.downstream_id or "" for name, r in done.items()},
                results={name: r.result or {} for name, r in done.items()},
                reason=order.cancel_reason or "",
            )

    def succeed(
        self, order_id: uuid.UUID, step: str, *, attempt: int, outcome: Outcome, seconds: float
    ) -> bool:
        system = REGISTRY.system_of(step)
        with unit_of_work() as session:
            order, steps = locked(session, order_id)
            row = steps[step]
            if row.compensation_status != CompensationStatus.SUCCEEDED:
                row.compensation_status = CompensationStatus.SUCCEEDED
                row.compensation_id = outcome.downstream_id
                row.compensation_error = None
                audit.record(
                    session,
                    audit.COMPENSATION_SUCCEEDED,
                    order_id=order_id,
                    step=step,
                    attempt=attempt,
                    compensation_id=outcome.downstream_id,
                    undoes=row.downstream_id,
                    duration_ms=round(seconds * 1000, 1),
                )
            finish_if_undone(session, order, steps)
            counting_since = datetime.now(UTC) - timedelta(seconds=self._window)
            session.execute(
                update(BreakerState)
                .where(
                    BreakerState.system == system,
                    BreakerState.state == "closed",
                    BreakerState.window_started_at > counting_since,
                )
                .values(calls=BreakerState.calls + 1)
            )
            return _breaker_closed(session, system)

    def fail(
        self,
        order_id: uuid.UUID,
        step: str,
        *,
        attempt: int,
        error: DownstreamError,
        retry: RetryPlan | None,
    ) -> None:
        with unit_of_work() as session:
            _, steps = locked(session, order_id)
            row = steps[step]
            if row.compensation_status == CompensationStatus.SUCCEEDED:
                return
            row.compensation_status = CompensationStatus.ERROR
            row.compensation_error = str(error)[:1000]
            record_error(
                session,
                (audit.COMPENSATION_FAILED, audit.COMPENSATION_RETRY_SCHEDULED),
                order_id=order_id,
                step=step,
                attempt=attempt,
                error=error,
                retry=retry,
            )

    def refuse(
        self, order_id: uuid.UUID, step: str, *, refused: Refused, asked: Mapping[str, Any]
    ) -> None:
        with unit_of_work() as session:
            audit.record(
                session,
                audit.COMPENSATION_REFUSED,
                status="error",
                order_id=order_id,
                step=step,
                **refused_detail(refused, asked),
            )


class SqlCompensationRecorder:
    """A compensation given up on: a failure of kind ``compensation`` for the operator, and the
    order left ``cancelling`` (its compensation's error says why)."""

    def gave_up(
        self, order_id: uuid.UUID, step: str, *, kind: str, error: DownstreamError, attempts: int
    ) -> None:
        with unit_of_work() as session:
            give_up(session, order_id, step, kind=kind, error=error, attempts=attempts)


def give_up(
    session: Session,
    order_id: uuid.UUID,
    step: str,
    *,
    kind: str,
    error: DownstreamError,
    attempts: int,
) -> None:
    """The compensation of ``step`` failed for good (or its chain could not be got going): its
    open failure of kind ``compensation``, in the caller's transaction."""
    _, steps = locked(session, order_id)
    row = steps[step]
    if row.compensation_status == CompensationStatus.SUCCEEDED:
        return
    row.compensation_status = CompensationStatus.FAILED
    # What the operator reads first: the system's code, its words, and why it stopped.
    why = f"{error.code}: {error.message}" if error.code else error.message
    if kind != FailureKind.PERMANENT:
        why = f"{why} ({kind})"
    row.compensation_error = why[:1000]
    now = datetime.now(UTC)
    failure = session.scalars(
        select(Failure)
        .where(
            Failure.order_id == order_id,
            Failure.step == step,
            Failure.state == FailureState.OPEN,
        )
        .with_for_update()
    ).one_or_none()
    if failure is None:
        failure = Failure(order_id=order_id, step=step, first_failed_at=now)
        session.add(failure)
    failure.error_kind = FailureKind.COMPENSATION
    failure.http_status = error.status
    failure.error_code = error.code
    failure.message = f"compensation: {why}"[:2000]
    failure.attempts = max(failure.attempts or 0, attempts)
    failure.last_failed_at = now
    audit.record(
        session,
        audit.COMPENSATION_GAVE_UP,
        status="error",
        order_id=order_id,
        step=step,
        attempt=attempts,
        kind=kind,
        http_status=error.status,
        code=error.code,
        message=error.message[:500],
        order_status=OrderStatus.CANCELLING,
    )
