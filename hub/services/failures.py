"""Giving up on a step: the order is ``failed`` at it, with one open failure record to replay."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.db import audit
from hub.db.models import Failure, Order, StepOutcome


@dataclass(frozen=True)
class FailureReport:
    order_id: uuid.UUID
    step: str
    kind: str  # one of hub.core.pipeline.FAILURE_KINDS
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
