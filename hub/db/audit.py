"""Audit trail: one ``integration_events`` row per transition, written in the caller's session."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.db.models import IntegrationEvent

# Event types operators and tools rely on; add, don't rename.
RECEIVED = "order.received"
QUEUED = "order.queued"
COMPLETED = "order.completed"
FAILED = "order.failed"
STEP_STARTED = "step.started"
STEP_SUCCEEDED = "step.succeeded"
STEP_SKIPPED = "step.skipped"
# A step message the order's records did not allow (hub.core.step_rule), whoever sent it.
STEP_REFUSED = "step.refused"
STEP_FAILED = "step.failed"
RETRY_SCHEDULED = "step.retry_scheduled"
STEP_DEFERRED = "step.deferred"
DEAD_LETTERED = "step.dead_lettered"
DEAD_LETTER_UNKNOWN = "dead_letter.unknown"
CHAIN_RESUMED = "chain.resumed"
# The sweeper re-drove a chain that had stopped without a dead letter (hub.services.sweeper).
CHAIN_REDRIVEN = "chain.redriven"
REPLAYED = "failure.replayed"
DISCARDED = "failure.discarded"
# Cancellation (hub.services.cancellation) and the compensations undoing an order's steps
# (hub.db.compensation_store), each with the step it undoes.
CANCEL_REQUESTED = "order.cancel_requested"
CANCELLED = "order.cancelled"
CLOSED = "order.closed"
COMPENSATION_STARTED = "compensation.started"
COMPENSATION_SUCCEEDED = "compensation.succeeded"
COMPENSATION_SKIPPED = "compensation.skipped"
COMPENSATION_REFUSED = "compensation.refused"
COMPENSATION_FAILED = "compensation.failed"
COMPENSATION_RETRY_SCHEDULED = "compensation.retry_scheduled"
COMPENSATION_GAVE_UP = "compensation.gave_up"
# An order's ship_to or customer corrected (hub.services.amendments), before and after.
AMENDED = "order.amended"
FAILURE_CANCELLED = "failure.cancelled"
FAILURE_CLOSED = "failure.closed"
BREAKER_OPENED = "breaker.opened"
BREAKER_HALF_OPEN = "breaker.half_open"
BREAKER_CLOSED = "breaker.closed"


def record(
    session: Session,
    event_type: str,
    *,
    status: str = "ok",
    order_id: uuid.UUID | None = None,
    step: str | None = None,
    attempt: int | None = None,
    **detail: Any,
) -> IntegrationEvent:
    event = IntegrationEvent(
        event_type=event_type,
        status=status,
        order_id=order_id,
        step=step,
        attempt=attempt,
        detail=detail,
    )
    session.add(event)
    return event


def timeline(session: Session, order_id: uuid.UUID) -> list[IntegrationEvent]:
    """Every event of one order, in the order they were committed."""
    query = (
        select(IntegrationEvent)
        .where(IntegrationEvent.order_id == order_id)
        .order_by(IntegrationEvent.seq)
    )
    return list(session.scalars(query))


def as_dict(event: IntegrationEvent) -> dict[str, Any]:
    return {
        "id": str(event.id),
        "at": event.created_at.isoformat(),
        "event_type": event.event_type,
        "status": event.status,
        "step": event.step,
        "attempt": event.attempt,
        "detail": event.detail,
    }
