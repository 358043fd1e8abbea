"""What ``GET /orders/{id}`` and ``hub timeline`` show of an order."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from hub.core.registry import REGISTRY
from hub.db import audit
from hub.db.models import Order


class AmbiguousOrder(LookupError):
    """Several senders use this external id: ask for the order by its id."""

    def __init__(self, ref: str, senders: list[str]) -> None:
        super().__init__(
            f"{len(senders)} orders have external id {ref!r} (senders {', '.join(senders)}): "
            "give the order id instead"
        )
        self.senders = senders


def external_ids(session: Session, order_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
    """The external id of each of these orders (what the sender and the CRM call it)."""
    wanted = set(order_ids)
    if not wanted:
        return {}
    rows = session.execute(select(Order.id, Order.external_id).where(Order.id.in_(wanted)))
    return {order_id: external_id for order_id, external_id in rows}


def find_order(session: Session, ref: str, *, sender: str | None) -> Order | None:
    """An order by its id or, failing that, by its external id.

    ``sender``: only that sender's orders; another sender's order is not found, exactly as if it
    did not exist (a sender must not learn that it does). None: any sender's (operators); an
    external id that several senders use raises ``AmbiguousOrder``.
    """
    query = select(Order).options(selectinload(Order.steps))
    if sender is not None:
        query = query.where(Order.sender == sender)
    try:
        order_id = uuid.UUID(ref)
    except ValueError:
        found = list(session.scalars(query.where(Order.external_id == ref).limit(50)))
        if len(found) > 1:
            raise AmbiguousOrder(ref, sorted(order.sender for order in found)) from None
        return found[0] if found else None
    return session.scalars(query.where(Order.id == order_id)).one_or_none()


def order_view(session: Session, order: Order) -> dict[str, Any]:
    return {
        "order_id": str(order.id),
        "external_id": order.external_id,
        "sender": order.sender,
        "status": order.status,
        "cancel_reason": order.cancel_reason,
        "created_at": order.created_at.isoformat(),
        "steps": {
            row.step: {
                "status": row.status,
                "attempts": row.attempts,
                "downstream_id": row.downstream_id,
                "last_error": row.last_error,
                # Undoing the step for a cancelled order (status None: not asked for).
                "compensation": {
                    "status": row.compensation_status,
                    "attempts": row.compensation_attempts,
                    "id": row.compensation_id,
                    "error": row.compensation_error,
                },
            }
            for row in sorted(order.steps, key=lambda r: _STEP_ORDER.get(r.step, 99))
        },
        "timeline": [audit.as_dict(event) for event in audit.timeline(session, order.id)],
    }


_STEP_ORDER = {step: index for index, step in enumerate(REGISTRY.step_names)}
