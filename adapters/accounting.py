"""Accounting adapter: invoice a shipped order."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from adapters.http import JsonHttpClient


class AccountingClient(JsonHttpClient):
    """The accounting platform's invoice API (docs/architecture.md, "Accounting: invoices")."""

    system = "accounting"

    def create_invoice(
        self,
        *,
        order_id: str,
        customer: Mapping[str, Any],
        currency: str,
        lines: Sequence[Mapping[str, Any]],
        shipment_id: str,
        idempotency_key: str,
    ) -> dict[str, Any]:
        """Create the invoice; answers {"invoice_id", "total" (decimal string), ...}."""
        body = {
            "order_id": order_id,
            "customer": dict(customer),
            "currency": currency,
            "lines": [
                {"sku": line["sku"], "qty": line["qty"], "unit_price": _money(line["unit_price"])}
                for line in lines
            ],
            "shipment_id": shipment_id,
        }
        return self.post("/invoices", json_body=body, idempotency_key=idempotency_key)


def _money(value: object) -> str:
    # A float price has already lost cents somewhere upstream; refuse it rather than send it.
    if isinstance(value, str):
        return value
    if isinstance(value, Decimal):
        return format(value, "f")
    raise TypeError(f"unit_price must be a decimal string, not {type(value).__name__}")
