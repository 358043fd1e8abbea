"""ERP adapter: reserve stock for an order, read a stock level."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from adapters.http import JsonHttpClient

if TYPE_CHECKING:
    from hub.settings import Settings


class ErpClient(JsonHttpClient):
    """The ERP's inventory API (docs/architecture.md, "ERP: inventory")."""

    system = "erp"

    @classmethod
    def from_settings(cls, settings: Settings) -> ErpClient:
        """Build the client from HUB_ERP_* and the HTTP timeouts."""
        return cls(
            base_url=settings.erp_url,
            token=settings.erp_token.get_secret_value(),
            connect_timeout=settings.http_connect_timeout,
            read_timeout=settings.http_read_timeout,
        )

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
