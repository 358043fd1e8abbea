"""The hub's records of steps, in PostgreSQL: the production ``StepStore``."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from hub.core.errors import DownstreamError
from hub.core.pipeline import STEPS
from hub.core.steps import AlreadyDone, OrderNotFound, OrderSnapshot, Outcome, Started
from hub.db import audit
from hub.db.engine import unit_of_work
from hub.db.models import Order, StepOutcome


def error_detail(error: DownstreamError) -> dict[str, Any]:
    return {
        "kind": error.kind,
        "system": error.system,
        "http_status": error.status,
        "code": error.code,
        "message": error.message[:500],
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
    row = session.scalars(
        select(StepOutcome)
        .where(StepOutcome.order_id == order_id, StepOutcome.step == step)
        .with_for_update()
    ).one_or_none()
    if row is None:
        raise OrderNotFound(f"order {order_id} has no step {step}")
    return row


class SqlStepStore:
    def begin(self, order_id: uuid.UUID, step: str) -> Started | AlreadyDone:
        with unit_of_work() as session:
            order = session.get(
                Order, order_id, options=[selectinload(Order.lines), selectinload(Order.steps)]
            )
            if order is None:
                raise OrderNotFound(f"no order {order_id}")
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
                return AlreadyDone(Outcome(row.downstream_id or "", dict(row.result or {})))
            row.attempts += 1
            row.status = "running"
            if order.status == "received":
                order.status = "processing"
            audit.record(
                session, audit.STEP_STARTED, order_id=order_id, step=step, attempt=row.attempts
            )
            earlier = {
                other.step: Outcome(other.downstream_id or "", dict(other.result or {}))
                for other in order.steps
                if other.status == "succeeded"
            }
            return Started(order=_snapshot(order), attempt=row.attempts, earlier=earlier)

    def succeed(
        self, order_id: uuid.UUID, step: str, *, attempt: int, outcome: Outcome, seconds: float
    ) -> None:
        with unit_of_work() as session:
            row = _locked_step(session, order_id, step)
            if row.status == "succeeded":
                return  # a concurrent delivery got there first; the key made it the same effect
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

    def fail(self, order_id: uuid.UUID, step: str, *, attempt: int, error: DownstreamError) -> None:
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
