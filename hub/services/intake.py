"""Accepting an order: one transaction writes the order, its lines, its steps and an outbox row."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from hub.core.registry import Pipeline
from hub.core.schemas import OrderIn
from hub.core.statuses import OrderStatus
from hub.db import audit, hot_path
from hub.db.dialect import insert_for
from hub.db.engine import get_engine, unit_of_work
from hub.db.models import Order, OrderLine, OutboxMessage, StepOutcome
from hub.settings import get_settings


class RepeatDiffers(Exception):
    """A repeat of an accepted order that asks for something else: refused, never swallowed.

    ``code`` is ``idempotency_key_reuse`` (the sender's Idempotency-Key names another order, or
    the same order with another body) or ``order_differs`` (the external id was accepted with
    other contents: amend it with ``PATCH /orders/{id}`` instead). ``order`` is the stored one.
    """

    def __init__(self, code: str, order: Order, fields: list[str]) -> None:
        self.code = code
        self.order_id = order.id
        self.external_id = order.external_id
        self.status = order.status
        self.fields = fields
        if code == "idempotency_key_reuse":
            message = (
                f"this Idempotency-Key was used for order {order.external_id!r} with another "
                f"body (differs in {', '.join(fields)}); use a new key for a new order"
            )
        else:
            message = (
                f"order {order.external_id!r} was accepted with other contents (differs in "
                f"{', '.join(fields)}); to change it, PATCH /orders/{order.id}"
            )
        super().__init__(message)


def differing_fields(stored: Order, order: OrderIn) -> list[str]:
    """The fields of ``order`` that differ from the stored order's, in the body's order."""
    lines = [(line.sku, line.qty, Decimal(line.unit_price)) for line in order.lines]
    kept = [(line.sku, line.qty, Decimal(line.unit_price)) for line in stored.lines]
    pairs = {
        "external_id": (stored.external_id, order.external_id),
        "customer": (dict(stored.customer), order.customer.model_dump(mode="json")),
        "ship_to": (dict(stored.ship_to), order.ship_to.model_dump(mode="json")),
        "currency": (stored.currency, order.currency),
        "lines": (kept, lines),
    }
    return [name for name, (old, new) in pairs.items() if old != new]


@dataclass(frozen=True)
class Accepted:
    order_id: uuid.UUID
    status: str
    # False when this was a repeat of an order already accepted.
    created: bool
    outbox_id: int | None
    # The pipeline a new order was accepted on (its chain); empty for a repeat.
    steps: tuple[str, ...] = ()
    # The stored order's external id (a reply describes the stored order, never the request).
    external_id: str = ""


def _existing(
    session: Session, order: OrderIn, *, sender: str, idempotency_key: str | None
) -> Order:
    match = Order.external_id == order.external_id
    query = select(Order)
    if idempotency_key is not None:
        match = or_(match, Order.idempotency_key == idempotency_key)
        # The key's order first: a key reused for another external id is what to report.
        query = query.order_by((Order.idempotency_key == idempotency_key).desc())
    # Only the sender's own orders: another sender's external id is no repeat of this one.
    return session.scalars(query.where(Order.sender == sender, match).limit(1)).one()


def accept_order(
    session: Session,
    order: OrderIn,
    *,
    idempotency_key: str | None,
    sender: str,
    pipeline: Pipeline | None = None,
) -> Accepted:
    """Store a new order of ``sender`` with its outbox row, or return the sender's order this
    one repeats (same external id, or same Idempotency-Key, of the same sender).

    Two identical requests at the same instant both reach the INSERT; the unique indexes make
    the second wait for the first and then insert nothing, so it finds the first one's order.
    """
    pipeline = pipeline or get_settings().pipeline
    new_id = uuid.uuid4()
    inserted = session.execute(
        insert_for(session, Order)
        .values(
            id=new_id,
            sender=sender,
            external_id=order.external_id,
            idempotency_key=idempotency_key,
            status=OrderStatus.RECEIVED,
            customer=order.customer.model_dump(),
            ship_to=order.ship_to.model_dump(),
            currency=order.currency,
            pipeline=list(pipeline.steps),
            pipeline_version=pipeline.version,
        )
        .on_conflict_do_nothing()
        .returning(Order.id)
    ).scalar_one_or_none()
    if inserted is None:
        existing = _existing(session, order, sender=sender, idempotency_key=idempotency_key)
        differs = differing_fields(existing, order)
        if differs:
            same_key = idempotency_key is not None and existing.idempotency_key == idempotency_key
            code = "idempotency_key_reuse" if same_key else "order_differs"
            raise RepeatDiffers(code, existing, differs)
        return Accepted(
            existing.id,
            existing.status,
            created=False,
            outbox_id=None,
            external_id=existing.external_id,
        )

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
    session.add_all(StepOutcome(order_id=new_id, step=step) for step in pipeline.steps)
    outbox = OutboxMessage(order_id=new_id, start_step=pipeline.first)
    session.add(outbox)
    audit.record(
        session,
        audit.RECEIVED,
        order_id=new_id,
        sender=sender,
        external_id=order.external_id,
        lines=len(order.lines),
        via_idempotency_key=idempotency_key is not None,
        pipeline_version=pipeline.version,
    )
    session.flush()
    return Accepted(
        new_id,
        OrderStatus.RECEIVED,
        created=True,
        outbox_id=outbox.id,
        steps=pipeline.steps,
        external_id=order.external_id,
    )


def accept(
    order: OrderIn,
    *,
    idempotency_key: str | None,
    sender: str,
    pipeline: Pipeline | None = None,
) -> Accepted:
    """Store a new order on ``pipeline`` (the settings' by default), or find the one it
    repeats: one statement on PostgreSQL for a new order (a repeat, rarer, takes the
    transaction below to find its twin)."""
    pipeline = pipeline or get_settings().pipeline
    engine = get_engine()
    if hot_path.serves(engine):
        order_id = uuid.uuid4()
        outbox_id = hot_path.insert_order(
            engine,
            order_id=order_id,
            order=order,
            idempotency_key=idempotency_key,
            sender=sender,
            pipeline=pipeline,
        )
        if outbox_id is not None:
            return Accepted(
                order_id,
                OrderStatus.RECEIVED,
                created=True,
                outbox_id=outbox_id,
                steps=pipeline.steps,
                external_id=order.external_id,
            )
    with unit_of_work() as session:
        return accept_order(
            session, order, idempotency_key=idempotency_key, sender=sender, pipeline=pipeline
        )
