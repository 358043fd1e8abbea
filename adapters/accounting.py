"""Accounting adapter: invoice a shipped order (the ``Invoicing`` port over the HTTP contract)."""

from __future__ import annotations

import uuid
from decimal import Decimal
from urllib.parse import quote

from adapters.http import JsonHttpClient
from hub.core.ports.downstream import CreditNote, Invoice, Order, Shipment


class AccountingClient(JsonHttpClient):
    """The accounting platform's invoice API (docs/architecture.md, "Accounting: invoices")."""

    system = "accounting"

    def invoice(self, order: Order, shipment: Shipment, key: str) -> Invoice:
        """Create the invoice: its id and total (a decimal string)."""
        body = {
            "order_id": str(order.id),
            "customer": dict(order.customer),
            "currency": order.currency,
            "lines": [
                {"sku": line.sku, "qty": line.qty, "unit_price": _money(line.unit_price)}
                for line in order.lines
            ],
            "shipment_id": shipment.id,
        }
        reply = self.post("/invoices", json_body=body, idempotency_key=key)
        return Invoice(
            id=str(reply["invoice_id"]),
            total=str(reply.get("total", "")),
            currency=str(reply.get("currency", order.currency)),
        )

    def credit(self, order_id: uuid.UUID, invoice: Invoice, reason: str, key: str) -> CreditNote:
        """Credit the invoice in full: the credit note's id and total."""
        path = f"/invoices/{quote(invoice.id, safe='')}/credit-notes"
        body = {"order_id": str(order_id), "reason": reason}
        reply = self.post(path, json_body=body, idempotency_key=key)
        return CreditNote(id=str(reply["credit_note_id"]), total=str(reply.get("total", "")))


def _money(value: object) -> str:
    # A float price has already lost cents somewhere upstream; refuse it rather than send it.
    if isinstance(value, str):
        return value
    if isinstance(value, Decimal):
        return format(value, "f")
    raise TypeError(f"unit_price must be a decimal string, not {type(value).__name__}")
