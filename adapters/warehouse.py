"""Warehouse adapter: ship a reserved order."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from adapters.http import JsonHttpClient


class WarehouseClient(JsonHttpClient):
    """The warehouse's fulfillment API (docs/architecture.md, "Warehouse: fulfillment")."""

    system = "warehouse"

    def create_shipment(
        self,
        *,
        order_id: str,
        reservation_id: str,
        ship_to: Mapping[str, Any],
        lines: Sequence[Mapping[str, Any]],
        idempotency_key: str,
    ) -> dict[str, Any]:
        """Create the shipment; answers {"shipment_id", "carrier", "tracking_number", ...}."""
        body = {
            "order_id": order_id,
            "reservation_id": reservation_id,
            "ship_to": dict(ship_to),
            "lines": [{"sku": line["sku"], "qty": line["qty"]} for line in lines],
        }
        return self.post("/shipments", json_body=body, idempotency_key=idempotency_key)
