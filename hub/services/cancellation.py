"""Ending an order that will not complete: cancelling it (its done steps compensated), or
closing it without compensating.

A cancel, by the sender (``POST /orders/{id}/cancel``) or an operator (a failed order's
"cancel"), makes the order ``cancelling``: no step of it starts any more (``hub.core.step_rule``),
a step in flight finishes, and the compensations of the steps that succeeded run in reverse
order (``hub.db.compensation_store``) through an outbox row, like any chain. An order nothing
was done for yet is ``cancelled`` at once. Closing is the operator's choice to end an order as
it stands, effects downstream and all (``closed``), with a reason.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.core.statuses import (
    CompensationStatus,
    FailureState,
    OrderStatus,
    OutboxKind,
    StepStatus,
)
from hub.db import audit
from hub.db.compensation_store import in_flight, locked, to_undo
from hub.db.models import Failure, OutboxMessage


class AlreadyCompleted(Exception):
    """A completed order is not cancelled (every step of it is done and wanted)."""

    code = "already_completed"


class NotCancellable(Exception):
    """The order is in no state to be closed this way (said in the message)."""


@dataclass(frozen=True)
class Cancelled:
    order_id: uuid.UUID
    status: str
    # True when this call cancelled it (False: it already was cancelling or over).
    changed: bool
    # The compensations' chain to publish now (the relay does it otherwise).
    outbox_id: int | None = None


def _resolve_open_failures(
    session: Session, order_id: uuid.UUID, *, state: str, by: str, reason: str
) -> list[Failure]:
    failures = list(
        session.scalars(
            select(Failure)
            .where(Failure.order_id == order_id, Failure.state == FailureState.OPEN)
            .with_for_update()
        )
    )
    now = datetime.now(UTC)
    for failure in failures:
        failure.state = state
        failure.resolved_at = now
        failure.resolved_by = by
        failure.resolution_reason = reason
        audit.record(
            session,
            audit.FAILURE_CANCELLED if state == FailureState.CANCELLED else audit.FAILURE_CLOSED,
            order_id=order_id,
            step=failure.step,
            failure_id=str(failure.id),
            operator=by,
            reason=reason,
            error_kind=failure.error_kind,
        )
    return failures


def cancel_order(session: Session, order_id: uuid.UUID, *, by: str, reason: str) -> Cancelled:
    """Cancel an order (its done steps to be compensated); harmless to repeat. Raises
    ``AlreadyCompleted`` for a completed order. The caller commits, then publishes the
    returned outbox row (or leaves it to the relay)."""
    order, steps = locked(session, order_id)
    if order.status == OrderStatus.COMPLETED:
        raise AlreadyCompleted(f"order {order_id} is completed")
    if order.status in (OrderStatus.CANCELLING, OrderStatus.CANCELLED, OrderStatus.CLOSED):
        return Cancelled(order_id, order.status, changed=False)
    was = order.status
    order.status = OrderStatus.CANCELLING
    order.cancel_reason = reason
    # An operator's choice for a failed order, or a sender's change of mind: either way the
    # order's open failures are no longer to be replayed.
    _resolve_open_failures(session, order_id, state=FailureState.CANCELLED, by=by, reason=reason)
    running = in_flight(steps)
    undo = to_undo(order, steps)
    audit.record(
        session,
        audit.CANCEL_REQUESTED,
        order_id=order_id,
        by=by,
        reason=reason,
        previous_status=was,
        in_flight=running,
        to_compensate=undo,
    )
    if not running and not undo:
        order.status = OrderStatus.CANCELLED
        audit.record(session, audit.CANCELLED, order_id=order_id, compensated=[], reason=reason)
        return Cancelled(order_id, order.status, changed=True)
    # The whole pipeline, last step first: a step in flight now may have succeeded by the
    # time its compensation's turn comes (the compensation waits for it to end).
    outbox = OutboxMessage(
        order_id=order_id, start_step=order.pipeline[-1], kind=OutboxKind.COMPENSATE
    )
    session.add(outbox)
    session.flush()
    return Cancelled(order_id, order.status, changed=True, outbox_id=outbox.id)


def close_order(session: Session, order_id: uuid.UUID, *, by: str, reason: str) -> str:
    """End an order as it stands, without compensating (an operator's choice, with a reason):
    a failed order, or a cancelling one whose compensation failed for good. Its open failures
    are closed. Returns the order's status (``closed``; a closed order stays so)."""
    order, steps = locked(session, order_id)
    if order.status == OrderStatus.CLOSED:
        return order.status
    if order.status not in (OrderStatus.FAILED, OrderStatus.CANCELLING):
        raise NotCancellable(
            f"order {order_id} is {order.status}: only a failed or cancelling order is closed"
        )
    if order.status == OrderStatus.CANCELLING and in_flight(steps):
        raise NotCancellable(f"order {order_id} has a step in flight: close it once it ends")
    running = [
        name
        for name, row in steps.items()
        if row.compensation_status in (CompensationStatus.RUNNING, CompensationStatus.PENDING)
    ]
    if running:
        raise NotCancellable(f"order {order_id} is compensating {', '.join(running)} right now")
    was = order.status
    order.status = OrderStatus.CLOSED
    _resolve_open_failures(session, order_id, state=FailureState.CLOSED, by=by, reason=reason)
    left = [
        name
        for name in order.pipeline
        if steps[name].status == StepStatus.SUCCEEDED
        and steps[name].compensation_status != CompensationStatus.SUCCEEDED
    ]
    audit.record(
        session,
        audit.CLOSED,
        status="error",
        order_id=order_id,
        by=by,
        reason=reason,
        previous_status=was,
        left_downstream=left,
    )
    return order.status


def replay_compensation(session: Session, order_id: uuid.UUID, step: str) -> OutboxMessage:
    """Reopen a compensation that failed for good and queue the compensations from it back to
    the first step (the caller closes its failure as replayed and commits)."""
    order, steps = locked(session, order_id)
    row = steps[step]
    row.compensation_status = CompensationStatus.PENDING
    # A fresh budget of attempts, as a replayed step gets.
    row.compensation_attempts = 0
    outbox = OutboxMessage(order_id=order.id, start_step=step, kind=OutboxKind.COMPENSATE)
    session.add(outbox)
    session.flush()
    return outbox
