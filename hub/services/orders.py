"""What ``GET /orders/{id}`` and ``hub timeline`` show of an order."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from hub.core.pipeline import STEPS
from hub.db import audit
from hub.db.models import Order


def find_order(session: Session, ref: str) -> Order | None:
    """An order by its id or, failing that, by the sender's external id."""
    try:
        order_id = uuid.UUID(ref)
    except ValueError:
        return session.scalars(
            select(Order).where(Order.external_id == ref).options(selectinload(Order.steps))
        ).one_or_none()
    return session.get(Order, order_id, options=[selectinload(Order.steps)])


def order_view(session: Session, order: Order) -> dict[str, Any]:
    return {
        "order_id": str(order.id),
        "external_id": order.external_id,
        "status": order.status,
        "created_at": order.created_at.isoformat(),
        "steps": {
            row.step: {
                "status": row.status,
                "attempts": row.attempts,
                "downstream_id": row.downstream_id,
                "last_error": row.last_error,
            }
            for row in sorted(order.steps, key=lambda r: _STEP_ORDER.get(r.step, 99))
        },
        "timeline": [audit.as_dict(event) for event in audit.timeline(session, order.id)],
    }


_STEP_ORDER = {step: index for index, step in enumerate(STEPS)}
