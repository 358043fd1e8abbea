"""Orders as a sender would post them; override what a test is about."""

from __future__ import annotations

import uuid
from typing import Any


def order_payload(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "external_id": f"CRM-{uuid.uuid4().hex[:12]}",
        "customer": {"id": "C-1", "name": "Ada Lovelace", "email": "ada@example.com"},
        "ship_to": {
            "name": "Ada Lovelace",
            "line1": "12 Analytical St",
            "city": "London",
            "postal_code": "NW1 2DB",
            "country": "GB",
        },
        "currency": "EUR",
        "lines": [
            {"sku": "SKU-001", "qty": 2, "unit_price": "19.90"},
            {"sku": "SKU-002", "qty": 1, "unit_price": "5.00"},
        ],
    }
    payload.update(overrides)
    return payload
