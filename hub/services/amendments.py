"""Correct, then replay: amending an order's ``ship_to``, ``customer`` or ``lines``
(``hub orders edit``, ``PATCH /orders/{id}``) under the rule of ``hub.core.amendments``,
audited with who, why, before and after. An operator's edit of a failed order replays it from
the failed step, with the new data (the step reads the order afresh when it starts)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.core.amendments import BadAmendment, amended, diff, line_dict, refusal
from hub.core.statuses import FailureState, OrderStatus
from hub.db import audit
from hub.db.compensation_store import locked
from hub.db.models import Failure, Order, OrderLine
from hub.services.replay import replay_one

# An order that is over, or being wound up, is not corrected.
AMENDABLE_STATUSES = (OrderStatus.RECEIVED, OrderStatus.PROCESSING, OrderStatus.FAILED)


class FieldAlreadyUsed(Exception):
    """A step that used the field has succeeded (or is running): 409 field_already_used."""

    code = "field_already_used"

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


class NotAmendable(Exception):
    """The order is completed, cancelled or closed: 409 order_not_amendable."""

    code = "order_not_amendable"


@dataclass(frozen=True)
class Amendment:
    order_id: uuid.UUID
    # (field.key, before, after) of every value that changes.
    changes: list[tuple[str, Any, Any]]
    # The replay queued after it (an operator's edit of a failed order).
    outbox_id: int | None = None
    replayed_step: str | None = None
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)


def amend_order(
    session: Session,
    order_id: uuid.UUID,
    changes: Mapping[str, Mapping[str, Any]],
    *,
    by: str,
    reason: str,
    apply: bool = True,
    replay: bool = False,
) -> Amendment:
    """Check ``changes`` (whole or partial top-level fields) and, with ``apply``, store them
    with their audit row; ``replay`` then replays the order's open failure. Raises
    ``BadAmendment`` (the schema refused a value), ``FieldAlreadyUsed`` or ``NotAmendable``.
    ``apply=False`` only shows what would change (the diff to confirm). The caller commits."""
    order, steps = locked(session, order_id)
    if order.status not in AMENDABLE_STATUSES:
        raise NotAmendable(f"order {order_id} is {order.status}: it can no longer be amended")
    current: dict[str, Any] = {
        "ship_to": dict(order.ship_to),
        "customer": dict(order.customer),
        "lines": [line_dict(x.sku, x.qty, x.unit_price) for x in order.lines],
    }
    statuses = {name: row.status for name, row in steps.items()}
    # Only the fields whose values change are judged (a form sends every field back).
    new = {
        name: value for name, value in amended(current, changes).items() if value != current[name]
    }
    for name in new:
        why = refusal(name, statuses)
        if why is not None:
            raise FieldAlreadyUsed(why, field=name)
    rows = diff(current, new)
    before = {name: current[name] for name in new}
    if not apply or not rows:
        return Amendment(order_id, rows, before=before, after=new)
    if "ship_to" in new:
        order.ship_to = new["ship_to"]
    if "customer" in new:
        order.customer = new["customer"]
    if "lines" in new:
        _store_lines(order, new["lines"])
    audit.record(
        session,
        audit.AMENDED,
        order_id=order_id,
        by=by,
        reason=reason,
        before=before,
        after=new,
        changed=[name for name, _, _ in rows],
    )
    session.flush()
    if not replay:
        return Amendment(order_id, rows, before=before, after=new)
    failure_id = session.scalar(
        select(Failure.id).where(Failure.order_id == order_id, Failure.state == FailureState.OPEN)
    )
    if failure_id is None:
        return Amendment(order_id, rows, before=before, after=new)
    done = replay_one(session, failure_id, operator=by, reason=f"after an amendment: {reason}")
    return Amendment(order_id, rows, done.outbox_id, done.step, before=before, after=new)


def _store_lines(order: Order, lines: list[dict[str, Any]]) -> None:
    """The rows of ``order_lines`` changed in place, by position (same primary keys: a delete
    and an insert of one key in one flush would collide)."""
    rows = list(order.lines)
    for position, line in enumerate(lines):
        if position < len(rows):
            row = rows[position]
            row.sku, row.qty, row.unit_price = line["sku"], line["qty"], Decimal(line["unit_price"])
        else:
            order.lines.append(
                OrderLine(
                    position=position,
                    sku=line["sku"],
                    qty=line["qty"],
                    unit_price=Decimal(line["unit_price"]),
                )
            )
    del order.lines[len(lines) :]


__all__ = ["AMENDABLE_STATUSES", "Amendment", "BadAmendment", "FieldAlreadyUsed", "amend_order"]
