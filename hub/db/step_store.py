"""The hub's records of steps through the ORM, on any database: trial mode's ``StepStore``.

PostgreSQL runs ``hub.db.hot_path.PostgresStepStore`` instead, one statement per move; this one
takes a few statements in one transaction and keeps the same rules, so the two are
interchangeable (``tests/integration/test_step_stores.py`` drives both).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, selectinload

from hub.core.errors import DownstreamError
from hub.core.pipeline import STEPS, SYSTEM_OF_STEP
from hub.core.steps import (
    AlreadyDone,
    Begun,
    BreakerNotClosed,
    OrderNotFound,
    OrderSnapshot,
    Outcome,
    RetryPlan,
    Started,
)
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


def _snapshot(order: Order) -> OrderSnapshot:
    return OrderSnapshot(
        id=order.id,
        customer=dict(order.customer),
        ship_to=dict(order.ship_to),
        currency=order.currency,
        lines=[
            {"sku": line.sku, "qty": line.qty, "unit_price": f"{line.unit_price:f}"}
            for line in order.lines
        ],
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
    def __init__(self, *, breaker_window: float) -> None:
        self._window = breaker_window

    def begin(self, order_id: uuid.UUID, step: str, *, gate_passed: bool) -> Begun:
        with unit_of_work() as session:
            row = _locked_step(session, order_id, step)
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
            if not gate_passed and not _breaker_closed(session, SYSTEM_OF_STEP[step]):
                return BreakerNotClosed()
            order = session.get(Order, order_id, options=[selectinload(Order.lines)])
            if order is None:
                raise OrderNotFound(f"no order {order_id}")
            row.attempts += 1
            row.status = "running"
            if order.status == "received":
                order.status = "processing"
            audit.record(
                session, audit.STEP_STARTED, order_id=order_id, step=step, attempt=row.attempts
            )
            earlier = {
                other: downstream_id or ""
                for other, downstream_id in session.execute(
                    select(StepOutcome.step, StepOutcome.downstream_id).where(
                        StepOutcome.order_id == order_id,
                        StepOutcome.status == "succeeded",
                        StepOutcome.step != step,
                    )
                )
            }
            return Started(order=_snapshot(order), attempt=row.attempts, earlier=earlier)

    def succeed(
        self, order_id: uuid.UUID, step: str, *, attempt: int, outcome: Outcome, seconds: float
    ) -> bool:
        system = SYSTEM_OF_STEP[step]
        with unit_of_work() as session:
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
                if step == STEPS[-1]:
                    order = session.get(Order, order_id, with_for_update=True)
                    assert order is not None
                    order.status = "completed"
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
            row = _locked_step(session, order_id, step)
            if row.status == "succeeded":
                return
            row.status = "error"
            row.last_error = str(error)[:1000]
            audit.record(
                session,
                audit.STEP_FAILED,
                status="error",
                order_id=order_id,
                step=step,
                attempt=attempt,
                **error_detail(error),
            )
            if retry is not None:
                audit.record(
                    session,
                    audit.RETRY_SCHEDULED,
                    status="retry",
                    order_id=order_id,
                    step=step,
                    attempt=attempt,
                    **retry_detail(error, retry),
                )
