"""Accepting an order: one transaction writes the order, its lines, its steps and an outbox row."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from hub.core.pipeline import STEPS
from hub.core.schemas import OrderIn
from hub.db import audit, hot_path
from hub.db.dialect import insert_for
from hub.db.engine import get_engine, unit_of_work
from hub.db.models import Order, OrderLine, OutboxMessage, StepOutcome


@dataclass(frozen=True)
class Accepted:
    order_id: uuid.UUID
    status: str
    # False when this was a repeat of an order already accepted.
    created: bool
    outbox_id: int | None


def _existing(
    session: Session, order: OrderIn, *, sender: str, idempotency_key: str | None
) -> Order:
    match = Order.external_id == order.external_id
    if idempotency_key is not None:
        match = or_(match, Order.idempotency_key == idempotency_key)
    # Only the sender's own orders: another sender's external id is no repeat of this one.
    return session.scalars(select(Order).where(Order.sender == sender, match).limit(1)).one()


def accept_order(
    session: Session, order: OrderIn, *, idempotency_key: str | None, sender: str
) -> Accepted:
    """Store a new order of ``sender`` with its outbox row, or return the sender's order this
    one repeats (same external id, or same Idempotency-Key, of the same sender).

    Two identical requests at the same instant both reach the INSERT; the unique indexes make
    the second wait for the first and then insert nothing, so it finds the first one's order.
    """
    new_id = uuid.uuid4()
    inserted = session.execute(
        insert_for(session, Order)
        .values(
            id=new_id,
            sender=sender,
            external_id=order.external_id,
            idempotency_key=idempotency_key,
            status="received",
            customer=order.customer.model_dump(),
            ship_to=order.ship_to.model_dump(),
            currency=order.currency,
        )
        .on_conflict_do_nothing()
        .returning(Order.id)
    ).scalar_one_or_none()
    if inserted is None:
        existing = _existing(session, order, sender=sender, idempotency_key=idempotency_key)
        return Accepted(existing.id, existing.status, created=False, outbox_id=None)

    session.add_all(
        OrderLine(
            order_id=new_id,
            position=position,
            sku=line.sku,
            qty=line.qty,
            unit_price=Decimal(line.unit_price),
        )
        for position, line in enumerate(order.lines)
    )
    session.add_all(StepOutcome(order_id=new_id, step=step) for step in STEPS)
    outbox = OutboxMessage(order_id=new_id, start_step=STEPS[0])
    session.add(outbox)
    audit.record(
        session,
        audit.RECEIVED,
        order_id=new_id,
        sender=sender,
        external_id=order.external_id,
        lines=len(order.lines),
        via_idempotency_key=idempotency_key is not None,
    )
    session.flush()
    return Accepted(new_id, "received", created=True, outbox_id=outbox.id)


def accept(order: OrderIn, *, idempotency_key: str | None, sender: str) -> Accepted:
    """Store a new order, or find the one it repeats: one statement on PostgreSQL for a new
    order (a repeat, rarer, takes the transaction below to find its twin)."""
    engine = get_engine()
    if hot_path.serves(engine):
        order_id = uuid.uuid4()
        outbox_id = hot_path.insert_order(
            engine, order_id=order_id, order=order, idempotency_key=idempotency_key, sender=sender
        )
        if outbox_id is not None:
            return Accepted(order_id, "received", created=True, outbox_id=outbox_id)
    with unit_of_work() as session:
        return accept_order(session, order, idempotency_key=idempotency_key, sender=sender)
