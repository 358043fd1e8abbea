"""The accounting sandbox: invoices with a decimal total, never a float."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from sandbox import checks
from sandbox.app import Service
from sandbox.faults import FaultSwitch
from sandbox.ledger import Effect, Ledger
from sandbox.protocol import ApiError, Reply
from sandbox.state import SandboxState


def accounting_service(state: SandboxState, token: str) -> Service:
    """The accounting platform's invoice API."""
    # invoice id -> (order id, total, credited); changed only under the ledger's (shared) lock.
    invoices: dict[str, tuple[str, Decimal, bool]] = {}

    def invoice(payload: Any) -> Effect:
        body = checks.obj(payload, "body")
        order_id = checks.text(body, "order_id")
        checks.obj(body.get("customer"), "customer")
        currency = checks.currency(body)
        lines = checks.lines(body, priced=True)
        checks.text(body, "shipment_id")
        total = sum((line["qty"] * line["unit_price"] for line in lines), Decimal(0))
        invoice_id = f"inv_{uuid.uuid4().hex}"
        invoices[invoice_id] = (order_id, total, False)
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

    def credit_note(invoice_id: str, payload: Any) -> Effect:
        body = checks.obj(payload, "body")
        order_id = checks.text(body, "order_id")
        checks.text(body, "reason")
        found = invoices.get(invoice_id)
        if found is None:
            raise ApiError(404, "unknown_invoice", f"no invoice {invoice_id}")
        invoiced_order, total, credited = found
        if invoiced_order != order_id:
            raise checks.invalid(f"invoice {invoice_id} belongs to another order")
        if credited:
            raise ApiError(409, "already_credited", f"{invoice_id} has a credit note already")
        invoices[invoice_id] = (invoiced_order, total, True)
        credit_note_id = f"crn_{uuid.uuid4().hex}"
        reply = Reply.json(
            201,
            {
                "credit_note_id": credit_note_id,
                "invoice_id": invoice_id,
                "total": format(total, "f"),
            },
        )
        return Effect(order_id=order_id, id=credit_note_id, reply=reply, compensates=invoice_id)

    return Service(
        name="accounting",
        token=token,
        ledger=Ledger("accounting", state.lock),
        faults=FaultSwitch("accounting"),
        writes={"/invoices": invoice},
        actions={("/invoices/", "/credit-notes"): credit_note},
    )
