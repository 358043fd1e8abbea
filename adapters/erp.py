"""ERP adapter: reserve stock for an order, read a stock level."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from adapters.http import JsonHttpClient


class ErpClient(JsonHttpClient):
    """The ERP's inventory API (docs/architecture.md, "ERP: inventory")."""

    system = "erp"

    def reserve(
        self, *, order_id: str, lines: Sequence[Mapping[str, Any]], idempotency_key: str
    ) -> dict[str, Any]:
        """Reserve every line or nothing; 409 out_of_stock surfaces as a PermanentError."""
        # The ERP contract takes sku and qty only; prices are the accounting system's business.
        body = {
            "order_id": order_id,
            "lines": [{"sku": line["sku"], "qty": line["qty"]} for line in lines],
        }
        return self.post("/inventory/reservations", json_body=body, idempotency_key=idempotency_key)

    def stock(self, sku: str) -> dict[str, Any]:
        """Return {"sku", "on_hand", "reserved"} for one sku."""
        return self.get(f"/inventory/{quote(sku, safe='')}")
