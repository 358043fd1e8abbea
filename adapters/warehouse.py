"""Warehouse adapter: ship a reserved order (the ``Fulfillment`` port over the HTTP contract)."""

from __future__ import annotations

import uuid
from urllib.parse import quote

from adapters.http import JsonHttpClient
from hub.core.ports.downstream import Order, Reservation, Shipment


class WarehouseClient(JsonHttpClient):
    """The warehouse's fulfillment API (docs/architecture.md, "Warehouse: fulfillment")."""

    system = "warehouse"

    def ship(self, order: Order, reservation: Reservation, key: str) -> Shipment:
        """Create the shipment: its id, carrier and tracking number."""
        body = {
            "order_id": str(order.id),
            "reservation_id": reservation.id,
            "ship_to": dict(order.ship_to),
            "lines": [{"sku": line.sku, "qty": line.qty} for line in order.lines],
        }
        reply = self.post("/shipments", json_body=body, idempotency_key=key)
        return Shipment(
            id=str(reply["shipment_id"]),
            carrier=str(reply.get("carrier", "")),
            tracking_number=str(reply.get("tracking_number", "")),
        )

    def cancel(self, order_id: uuid.UUID, shipment: Shipment, key: str) -> None:
        """Cancel the shipment; 409 already_dispatched once it has left the warehouse."""
        path = f"/shipments/{quote(shipment.id, safe='')}/cancel"
        self.post(path, json_body={"order_id": str(order_id)}, idempotency_key=key)
