"""The hub's records of steps through the ORM, on any database: trial mode's ``StepStore``.

PostgreSQL runs ``hub.db.hot_path.PostgresStepStore`` instead, one statement per move; this one
takes a few statements in one transaction and keeps the same rules and writes the same audit
rows, so the two are interchangeable: ``tests/integration/test_step_stores.py`` runs one
contract over both, and over this one on SQLite.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session, selectinload

from hub.core.errors import DownstreamError
from hub.core.ports.downstream import Line
from hub.core.ports.downstream import Order as PortOrder
from hub.core.registry import REGISTRY
from hub.core.statuses import ENDING_ORDER_STATUSES, OrderStatus
from hub.core.step_rule import refusal
from hub.core.steps import (
    AlreadyDone,
    Begun,
    BreakerNotClosed,
    OrderNotFound,
    Outcome,
    Refused,
    RetryPlan,
    Started,
    Unrecordable,
)
from hub.core.stored_text import storable_result
from hub.db import audit
from hub.db.engine import unit_of_work
from hub.db.models import BreakerState, Order, StepOutcome


def error_detail(error: DownstreamError) -> dict[str, Any]:
    return {
        "kind": error.kind,
        "system": error.system,
        "http_status": error.status,
        "code": error.code,
        "message": error.message[:500],
    }


def retry_detail(error: DownstreamError, retry: RetryPlan) -> dict[str, Any]:
    """What a ``step.retry_scheduled`` audit row says: when, why, and what the system said."""
    return {
        "delay_s": retry.delay_s,
        "backoff_ceiling_s": retry.backoff_ceiling_s,
        "retry_after_s": error.retry_after,
        "reason": str(error)[:300],
        **error_detail(error),
    }


def record_error(
    session: Session,
    events: tuple[str, str],
    *,
    order_id: uuid.UUID,
    step: str,
    attempt: int,
    error: DownstreamError,
    retry: RetryPlan | None,
) -> None:
    """The audit rows of a failed call: the failure, then its retry when one is planned
    (``events``: the failure's and the retry's event types, a step's or a compensation's)."""
    failed, retried = events
    audit.record(
        session,
        failed,
        status="error",
        order_id=order_id,
        step=step,
        attempt=attempt,
        **error_detail(error),
    )
    if retry is not None:
        audit.record(
            session,
            retried,
            status="retry",
            order_id=order_id,
            step=step,
            attempt=attempt,
            **retry_detail(error, retry),
        )


def refused_detail(refused: Refused, asked: Mapping[str, Any]) -> dict[str, Any]:
    """What a ``step.refused`` audit row says: why, and what the message asked for (its task,
    id and the sender's node as the message named them: claims, kept as evidence)."""
    # The claims come from whoever published the message: kept without NUL (jsonb refuses it).
    claims = storable_result(dict(asked))
    return {"reason": refused.reason, "order_status": refused.order_status, "asked": claims}


def order_snapshot(order: Order) -> PortOrder:
    return PortOrder(
        id=order.id,
        customer=dict(order.customer),
        ship_to=dict(order.ship_to),
        currency=order.currency,
        lines=tuple(
            Line(sku=line.sku, qty=line.qty, unit_price=f"{line.unit_price:f}")
            for line in order.lines
        ),
    )


def _locked_step(session: Session, order_id: uuid.UUID, step: str) -> StepOutcome:
    # populate_existing: a row already in the session must be refreshed from the locked read,
    # or a concurrent delivery's success (or attempt) would be missed.
    row = session.scalars(
        select(StepOutcome)
        .where(StepOutcome.order_id == order_id, StepOutcome.step == step)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one_or_none()
    if row is None:
        raise OrderNotFound(f"order {order_id} has no step {step}")
    return row


def _breaker_closed(session: Session, system: str) -> bool:
    state = session.scalar(select(BreakerState.state).where(BreakerState.system == system))
    return state in (None, "closed")


class SqlStepStore:
    """The ``StepStore`` port through the ORM: a few statements in one transaction a move."""

    def __init__(
        self,
        *,
        breaker_window: float,
        sessions: Callable[[], AbstractContextManager[Session]] = unit_of_work,
    ) -> None:
        self._window = breaker_window
        self._sessions = sessions

    def begin(self, order_id: uuid.UUID, step: str, *, gate_passed: bool) -> Begun:
        with self._sessions() as session:
            row = _locked_step(session, order_id, step)
            order = session.get(Order, order_id, options=[selectinload(Order.lines)])
            if order is None:
                raise OrderNotFound(f"no order {order_id}")
            statuses = {
                name: status
                for name, status in session.execute(
                    select(StepOutcome.step, StepOutcome.status).where(
                        StepOutcome.order_id == order_id
                    )
                )
            }
            reason = refusal(order.status, step, statuses)
            if reason is not None:
                return Refused(reason=reason, order_status=order.status)
            if row.status == "succeeded":
                audit.record(
                    session,
                    audit.STEP_SKIPPED,
                    order_id=order_id,
                    step=step,
                    attempt=row.attempts,
                    downstream_id=row.downstream_id,
                    reason="already succeeded; stored result passed on",
                )
                return AlreadyDone()
            if not gate_passed and not _breaker_closed(session, REGISTRY.system_of(step)):
                return BreakerNotClosed()
            row.attempts += 1
            row.status = "running"
            if order.status == "received":
                order.status = "processing"
            audit.record(
                session, audit.STEP_STARTED, order_id=order_id, step=step, attempt=row.attempts
            )
            done = session.execute(
                select(StepOutcome.step, StepOutcome.downstream_id, StepOutcome.result).where(
                    StepOutcome.order_id == order_id,
                    StepOutcome.status == "succeeded",
                    StepOutcome.step != step,
                )
            ).all()
            return Started(
                order=order_snapshot(order),
                attempt=row.attempts,
                earlier={other: downstream_id or "" for other, downstream_id, _ in done},
                results={other: result or {} for other, _, result in done},
            )

    def succeed(
        self, order_id: uuid.UUID, step: str, *, attempt: int, outcome: Outcome, seconds: float
    ) -> bool:
        system = REGISTRY.system_of(step)
        with refused_as_unrecordable(), self._sessions() as session:
            row = _locked_step(session, order_id, step)
            if row.status != "succeeded":  # else a concurrent delivery got there first
                row.status = "succeeded"
                row.downstream_id = outcome.downstream_id
                row.result = outcome.result
                row.last_error = None
                audit.record(
                    session,
                    audit.STEP_SUCCEEDED,
                    order_id=order_id,
                    step=step,
                    attempt=attempt,
                    downstream_id=outcome.downstream_id,
                    duration_ms=round(seconds * 1000, 1),
                )
                order = session.get(Order, order_id, with_for_update=True)
                assert order is not None
                # The order's own last step; a step in flight when the order was cancelled
                # finishes, but the order stays cancelling (its compensations follow).
                if step == order.pipeline[-1] and order.status not in ENDING_ORDER_STATUSES:
                    order.status = OrderStatus.COMPLETED
                    audit.record(session, audit.COMPLETED, order_id=order_id)
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

    def refuse(
        self, order_id: uuid.UUID, step: str, *, refused: Refused, asked: Mapping[str, Any]
    ) -> None:
        with self._sessions() as session:
            audit.record(
                session,
                audit.STEP_REFUSED,
                status="error",
                order_id=order_id,
                step=step,
                **refused_detail(refused, asked),
            )

    def fail(
        self,
        order_id: uuid.UUID,
        step: str,
        *,
        attempt: int,
        error: DownstreamError,
        retry: RetryPlan | None,
    ) -> None:
        with self._sessions() as session:
            row = _locked_step(session, order_id, step)
            if row.status == "succeeded":
                return
            row.status = "error"
            row.last_error = str(error)[:1000]
            record_error(
                session,
                (audit.STEP_FAILED, audit.RETRY_SCHEDULED),
                order_id=order_id,
                step=step,
                attempt=attempt,
                error=error,
                retry=retry,
            )


@contextmanager
def refused_as_unrecordable() -> Iterator[None]:
    """A value of a reply the database refuses (NUL, NaN in JSON, over its column's length)
    raised as ``Unrecordable``, with PostgreSQL's first line saying which."""
    try:
        yield
    except DataError as exc:
        raise Unrecordable(str(exc.orig).splitlines()[0]) from exc
