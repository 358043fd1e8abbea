"""ERP adapter: reserve stock for an order (the ``Inventory`` port over the HTTP contract)."""

from __future__ import annotations

import uuid
from urllib.parse import quote

from adapters.http import JsonHttpClient
from hub.core.ports.downstream import Order, Reservation


class ErpClient(JsonHttpClient):
    """The ERP's inventory API (docs/architecture.md, "ERP: inventory")."""

    system = "erp"

    def reserve(self, order: Order, key: str) -> Reservation:
        """Reserve every line or nothing; 409 out_of_stock surfaces as a PermanentError."""
        # The ERP contract takes sku and qty only; prices are the accounting system's business.
        body = {
            "order_id": str(order.id),
            "lines": [{"sku": line.sku, "qty": line.qty} for line in order.lines],
        }
        reply = self.post("/inventory/reservations", json_body=body, idempotency_key=key)
        return Reservation(id=str(reply["reservation_id"]))

    def release(self, order_id: uuid.UUID, reservation: Reservation, key: str) -> None:
        """Give the stock back; 409 already_consumed once a shipment left with it."""
        path = f"/inventory/reservations/{quote(reservation.id, safe='')}/release"
        self.post(path, json_body={"order_id": str(order_id)}, idempotency_key=key)
