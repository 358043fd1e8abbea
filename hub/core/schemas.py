"""The intake contract: what a sender may post, validated strictly (unknown fields refused)."""

from __future__ import annotations

from typing import Annotated, Any

import pycountry
from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, StringConstraints

# No control characters: PostgreSQL refuses NUL in JSONB (a 500 instead of a 422), and the rest
# would reach operators' terminals and downstream systems. Neither C1 controls nor the bidi
# controls that reorder what is read (embeddings, overrides, isolates, marks).
PRINTABLE = r"^[^\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]+$"
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
# ISO 3166-1 alpha-2 and ISO 4217, from pycountry's lists; of 4217's X codes only currencies
# count (XXX is "no currency", XTS a test code, XAU gold): an invoice needs money.
_NOT_MONEY = frozenset(
    {"XXX", "XTS", "XAU", "XAG", "XPD", "XPT", "XDR", "XBA", "XBB", "XBC", "XBD", "XSU", "XUA"}
)
COUNTRIES = frozenset(country.alpha_2 for country in pycountry.countries)
CURRENCIES = frozenset(c.alpha_3 for c in pycountry.currencies) - _NOT_MONEY


def _country(code: str) -> str:
    if code not in COUNTRIES:
        raise ValueError(f"{code!r} is not an ISO 3166-1 country code")
    return code


def _currency(code: str) -> str:
    if code not in CURRENCIES:
        raise ValueError(f"{code!r} is not an ISO 4217 currency code")
    return code


CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$"), AfterValidator(_country)]
CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$"), AfterValidator(_currency)]
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


def _answer(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {}}}}


# Every answer of POST /orders (docs/architecture.md, "Intake"), so a client generated from the
# OpenAPI document knows the refusals too.
_ORDER_RESPONSES = {
    "200": _answer("a repeat of an accepted order: the stored order, created false"),
    "202": _answer("accepted: order_id, status, external_id, created true"),
    "401": _answer("no valid API key or signature; reason names the problem"),
    "409": _answer(
        "order_differs: the external_id was accepted with other contents; fields names them, "
        "order_id and status describe the stored order (amend it with PATCH /orders/{id})"
    ),
    "413": _answer("payload_too_large: the body is over HUB_MAX_BODY_BYTES"),
    "415": _answer("unsupported_media_type: send Content-Type: application/json"),
    "422": _answer(
        "validation_error naming each field (a key twice in one object included), or "
        "idempotency_key_reuse: the key was used for another order, which is described"
    ),
    "503": _answer("database_unavailable: PostgreSQL is not answering; retry"),
}


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
        "responses": _ORDER_RESPONSES,
        "parameters": [
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN},
            }
        ],
    }


class CancelIn(Strict):
    """The body of ``POST /orders/{id}/cancel`` (empty or ``{}`` is fine)."""

    reason: str | None = Field(default=None, min_length=1, max_length=500)


class AmendIn(Strict):
    """The body of ``PATCH /orders/{id}``: whole objects, validated as at intake."""

    ship_to: Address | None = None
    customer: Customer | None = None
    lines: list[Line] | None = Field(default=None, min_length=1, max_length=100)
