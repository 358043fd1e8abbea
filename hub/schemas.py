"""The intake contract: what a sender may post, validated strictly (unknown fields refused)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Code = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Sku = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
# Money travels as a decimal string ("12.50"), never a float that would round.
Money = Annotated[str, StringConstraints(pattern=r"^\d{1,10}(\.\d{1,4})?$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Customer(Strict):
    id: Code
    name: Text
    email: EmailStr


class Address(Strict):
    name: Text
    line1: Text
    city: Text
    postal_code: Annotated[str, StringConstraints(min_length=1, max_length=16)]
    country: CountryCode


class Line(Strict):
    sku: Sku
    qty: int = Field(gt=0, le=10_000, strict=True)
    unit_price: Money


class OrderIn(Strict):
    external_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]
    customer: Customer
    ship_to: Address
    currency: CurrencyCode
    lines: list[Line] = Field(min_length=1, max_length=100)
