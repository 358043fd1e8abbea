"""Giving up on a step: the order is ``failed`` at it, with one open failure record to replay."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.core.errors import DownstreamError
from hub.core.statuses import ENDING_ORDER_STATUSES
from hub.db import audit
from hub.db.engine import unit_of_work
from hub.db.models import Failure, Order, StepOutcome


@dataclass(frozen=True)
class FailureReport:
    order_id: uuid.UUID
    step: str
    kind: str  # one of hub.core.statuses.FailureKind
    message: str
    attempts: int
    http_status: int | None = None
    code: str | None = None


def open_failure(session: Session, order_id: uuid.UUID, step: str) -> Failure | None:
    return session.scalars(
        select(Failure)
        .where(Failure.order_id == order_id, Failure.step == step, Failure.state == "open")
        .with_for_update()
    ).one_or_none()


def record_failure(session: Session, report: FailureReport) -> Failure | None:
    """Mark the order failed at the step and keep (or refresh) its open failure record.

    Returns None, recording nothing, when the step has succeeded meanwhile (a late
    dead-letter of a delivery that another worker already completed).
    """
    step_row = session.get(StepOutcome, (report.order_id, report.step), with_for_update=True)
    order = session.get(Order, report.order_id, with_for_update=True)
    if order is None or step_row is None or step_row.status == "succeeded":
        return None
    if order.status in ENDING_ORDER_STATUSES:
        # A step in flight when its order was cancelled failed: nothing of it to undo, nothing
        # to replay; the order stays as it is and its compensations go on.
        step_row.status = "failed"
        step_row.last_error = report.message[:1000]
        audit.record(
            session,
            audit.STEP_FAILED,
            status="error",
            order_id=report.order_id,
            step=report.step,
            attempt=report.attempts,
            kind=report.kind,
            message=report.message[:500],
            order_status=order.status,
        )
        return None
    now = datetime.now(UTC)
    failure = open_failure(session, report.order_id, report.step)
    if failure is None:
        failure = Failure(order_id=report.order_id, step=report.step, first_failed_at=now)
        session.add(failure)
    failure.error_kind = report.kind
    failure.http_status = report.http_status
    failure.error_code = report.code
    failure.message = report.message[:2000]
    failure.attempts = max(failure.attempts or 0, report.attempts)
    failure.last_failed_at = now
    step_row.status = "failed"
    step_row.last_error = report.message[:1000]
    if order.status != "failed":
        order.status = "failed"
        audit.record(
            session,
            audit.FAILED,
            status="error",
            order_id=report.order_id,
            step=report.step,
            attempt=report.attempts,
            kind=report.kind,
            http_status=report.http_status,
            code=report.code,
            message=report.message[:500],
        )
    session.flush()
    return failure


class SqlStepRecorder:
    """The ``StepRecorder`` port: a step's give-up as a failure record (any database)."""

    def __init__(
        self, sessions: Callable[[], AbstractContextManager[Session]] = unit_of_work
    ) -> None:
        self._sessions = sessions

    def gave_up(
        self, order_id: uuid.UUID, step: str, *, kind: str, error: DownstreamError, attempts: int
    ) -> None:
        with self._sessions() as session:
            record_failure(
                session,
                FailureReport(
                    order_id=order_id,
                    step=step,
                    kind=kind,
                    message=error.message,
                    attempts=attempts,
                    http_status=error.status,
                    code=error.code,
                ),
            )
