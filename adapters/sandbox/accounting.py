"""The accounting sandbox: invoices with a decimal total, never a float."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from adapters.sandbox import checks
from adapters.sandbox.app import Service
from adapters.sandbox.faults import FaultSwitch
from adapters.sandbox.ledger import Effect, Ledger
from adapters.sandbox.protocol import Reply
from adapters.sandbox.state import SandboxState


def accounting_service(state: SandboxState, token: str) -> Service:
    """The accounting platform's invoice API."""

    def invoice(payload: Any) -> Effect:
        body = checks.obj(payload, "body")
        order_id = checks.text(body, "order_id")
        checks.obj(body.get("customer"), "customer")
        currency = checks.currency(body)
        lines = checks.lines(body, priced=True)
        checks.text(body, "shipment_id")
        total = sum((line["qty"] * line["unit_price"] for line in lines), Decimal(0))
        invoice_id = f"inv_{uuid.uuid4().hex}"
        reply = Reply.json(
            201,
            {
                "invoice_id": invoice_id,
                "order_id": order_id,
                "total": format(total, "f"),
                "currency": currency,
            },
        )
        return Effect(order_id=order_id, id=invoice_id, reply=reply)

    return Service(
        name="accounting",
        token=token,
        ledger=Ledger("accounting", state.lock),
        faults=FaultSwitch("accounting"),
        writes={"/invoices": invoice},
    )
