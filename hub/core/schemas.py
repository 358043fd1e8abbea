"""The intake contract: what a sender may post, validated strictly (unknown fields refused)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints

# No control characters: PostgreSQL refuses NUL in JSONB (a 500 instead of a 422), and the rest
# would reach operators' terminals and downstream systems.
PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
Text = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=PRINTABLE)
]
Code = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=PRINTABLE)
]
PostalCode = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=16, pattern=PRINTABLE)
]
Sku = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
# Money travels as a decimal string ("12.50"), never a float that would round.
# ASCII digits only (\d would take any script's digits); fits NUMERIC(14, 4).
# An order's id (a UUID) or the sender's external id: what GET /orders/{ref} takes.
EXTERNAL_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
# The optional Idempotency-Key header: 1-128 printable ASCII characters.
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,128}$"
Money = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,10}(\.[0-9]{1,4})?$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Customer(Strict):
    id: Code
    name: Text
    email: Annotated[EmailStr, Field(max_length=254)]


class Address(Strict):
    name: Text
    line1: Text
    city: Text
    postal_code: PostalCode
    country: CountryCode


class Line(Strict):
    sku: Sku
    qty: int = Field(gt=0, le=10_000, strict=True)
    unit_price: Money


class OrderIn(Strict):
    external_id: Annotated[str, StringConstraints(pattern=EXTERNAL_ID_PATTERN)]
    customer: Customer
    ship_to: Address
    currency: CurrencyCode
    lines: list[Line] = Field(min_length=1, max_length=100)


def _inline_refs(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline_refs(defs[ref.removeprefix("#/$defs/")], defs)
        return {key: _inline_refs(value, defs) for key, value in node.items() if key != "$defs"}
    if isinstance(node, list):
        return [_inline_refs(item, defs) for item in node]
    return node


def order_openapi() -> dict[str, Any]:
    """OpenAPI of ``POST /orders``'s body and headers (the endpoint reads the raw body itself).

    Nested models are inlined: pydantic's ``#/$defs/...`` references would point at the root
    of the OpenAPI document, where there are none.
    """
    schema = OrderIn.model_json_schema()
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": _inline_refs(schema, schema.get("$defs", {}))}
            },
        },
        "parameters": [
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN},
            }
        ],
    }
