"""What the hub's own tables say about a run (read-only queries of the stack's database)."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import datetime

from sqlalchemy import func, select

from hub.db import audit
from hub.db.engine import unit_of_work
from hub.db.models import IntegrationEvent, Order, OutboxMessage, StepOutcome


def status_counts() -> Counter[str]:
    with unit_of_work() as session:
        rows = session.execute(select(Order.status, func.count()).group_by(Order.status)).all()
    return Counter({status: count for status, count in rows})


def step_status_counts(step: str) -> Counter[str]:
    with unit_of_work() as session:
        rows = session.execute(
            select(StepOutcome.status, func.count())
            .where(StepOutcome.step == step)
            .group_by(StepOutcome.status)
        ).all()
    return Counter({status: count for status, count in rows})


def steps_running() -> int:
    """Steps of every order running now (started, not yet ended)."""
    with unit_of_work() as session:
        return int(
            session.scalar(
                select(func.count()).select_from(StepOutcome).where(StepOutcome.status == "running")
            )
            or 0
        )


def unsent_outbox() -> int:
    with unit_of_work() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.sent_at.is_(None))
            )
            or 0
        )


def last_completion() -> datetime | None:
    with unit_of_work() as session:
        return session.scalar(
            select(func.max(IntegrationEvent.created_at)).where(
                IntegrationEvent.event_type == audit.COMPLETED
            )
        )


def event_counts() -> Counter[str]:
    with unit_of_work() as session:
        rows = session.execute(
            select(IntegrationEvent.event_type, func.count()).group_by(IntegrationEvent.event_type)
        ).all()
    return Counter({kind: count for kind, count in rows})


def statuses_of(order_ids: set[str]) -> dict[str, str]:
    """Status of each of these orders (ids as text); unknown ids are left out."""
    if not order_ids:
        return {}
    with unit_of_work() as session:
        rows = session.execute(
            select(Order.id, Order.status).where(Order.id.in_([uuid.UUID(i) for i in order_ids]))
        ).all()
    return {str(order_id): status for order_id, status in rows}


def first_event_at(event_type: str) -> datetime | None:
    with unit_of_work() as session:
        return session.scalar(
            select(func.min(IntegrationEvent.created_at)).where(
                IntegrationEvent.event_type == event_type
            )
        )


def orders_with_a_step_running() -> list[str]:
    """Orders (ids as text) with a step running now: started, not yet ended."""
    with unit_of_work() as session:
        rows = session.scalars(
            select(StepOutcome.order_id).where(StepOutcome.status == "running").distinct()
        ).all()
    return [str(order_id) for order_id in rows]


def cancelled_in_flight() -> int:
    """Cancels that found a step of their order running (it finished, then was undone)."""
    with unit_of_work() as session:
        details = session.scalars(
            select(IntegrationEvent.detail).where(
                IntegrationEvent.event_type == audit.CANCEL_REQUESTED
            )
        ).all()
    return sum(1 for detail in details if (detail or {}).get("in_flight"))
