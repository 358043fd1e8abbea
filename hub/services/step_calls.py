"""How each step talks to its downstream system: request built from the order, id kept."""

from __future__ import annotations

from adapters.clients import Downstream
from hub.core.errors import PermanentError
from hub.core.steps import Outcome, Started, StepCall


def _lines(started: Started) -> list[dict[str, object]]:
    return [dict(line) for line in started.order.lines]


def _earlier_id(started: Started, step: str) -> str:
    try:
        return started.earlier[step]
    except KeyError:
        # Only a bug or a hand-edited database gets here: replaying the later step can't help.
        raise PermanentError(
            system="hub", message=f"step {step} has no recorded outcome", code="missing_outcome"
        ) from None


def step_calls(downstream: Downstream) -> dict[str, StepCall]:
    def inventory(started: Started, key: str) -> Outcome:
        reply = downstream.erp.reserve(
            order_id=str(started.order.id),
            lines=[{"sku": line["sku"], "qty": line["qty"]} for line in started.order.lines],
            idempotency_key=key,
        )
        return Outcome(str(reply["reservation_id"]), reply)

    def fulfillment(started: Started, key: str) -> Outcome:
        reply = downstream.warehouse.create_shipment(
            order_id=str(started.order.id),
            reservation_id=_earlier_id(started, "inventory"),
            ship_to=started.order.ship_to,
            lines=_lines(started),
            idempotency_key=key,
        )
        return Outcome(str(reply["shipment_id"]), reply)

    def invoice(started: Started, key: str) -> Outcome:
        reply = downstream.accounting.create_invoice(
            order_id=str(started.order.id),
            customer=started.order.customer,
            currency=started.order.currency,
            lines=_lines(started),
            shipment_id=_earlier_id(started, "fulfillment"),
            idempotency_key=key,
        )
        return Outcome(str(reply["invoice_id"]), reply)

    return {"inventory": inventory, "fulfillment": fulfillment, "invoice": invoice}
