"""Intake validation: what a sender gets told when an order is malformed."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from hub.core.schemas import OrderIn
from tests.factories import order_payload


def errors_of(payload: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as raised:
        OrderIn.model_validate(payload)
    return [".".join(str(p) for p in e["loc"]) for e in raised.value.errors()]


def test_a_well_formed_order_is_accepted_with_money_kept_as_decimal_strings() -> None:
    order = OrderIn.model_validate(order_payload())
    assert order.lines[0].unit_price == "19.90"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"surprise": 1}, "surprise"),
        ({"lines": []}, "lines"),
        ({"currency": "euro"}, "currency"),
        ({"external_id": ""}, "external_id"),
        ({"external_id": "x" * 200}, "external_id"),
        ({"lines": [{"sku": "A", "qty": 0, "unit_price": "1.00"}]}, "lines.0.qty"),
        ({"lines": [{"sku": "A", "qty": "2", "unit_price": "1.00"}]}, "lines.0.qty"),
        ({"lines": [{"sku": "A", "qty": 1, "unit_price": 1.5}]}, "lines.0.unit_price"),
        ({"lines": [{"sku": "A", "qty": 1, "unit_price": "-1"}]}, "lines.0.unit_price"),
        ({"lines": [{"sku": "A", "qty": 1, "unit_price": "1e3"}]}, "lines.0.unit_price"),
        ({"lines": [{"sku": "A", "qty": 1, "unit_price": "1.00", "note": "x"}]}, "lines.0.note"),
        ({"lines": [{"sku": "A", "qty": 1, "unit_price": "1"}] * 101}, "lines"),
    ],
)
def test_a_malformed_order_is_refused_naming_the_field(change: dict[str, Any], field: str) -> None:
    assert field in errors_of(order_payload(**change))


def test_a_bad_email_and_country_are_both_named() -> None:
    payload = order_payload()
    payload["customer"] = {**payload["customer"], "email": "not-an-email"}
    payload["ship_to"] = {**payload["ship_to"], "country": "Britain"}
    assert set(errors_of(payload)) == {"customer.email", "ship_to.country"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"currency": "XXX"}, "currency"),  # "no currency" is not money to invoice
        ({"currency": "ABC"}, "currency"),
        ({"ship_to": {**order_payload()["ship_to"], "country": "ZZ"}}, "ship_to.country"),
        (
            {"customer": {**order_payload()["customer"], "name": "Ada \u202egnp.exe"}},
            "customer.name",
        ),
        (
            {"customer": {**order_payload()["customer"], "name": "Ada \u2066x\u2069"}},
            "customer.name",
        ),
        ({"ship_to": {**order_payload()["ship_to"], "city": "Utr\x9becht"}}, "ship_to.city"),
    ],
)
def test_unknown_codes_and_c1_or_bidi_controls_are_refused(
    change: dict[str, Any], field: str
) -> None:
    assert field in errors_of(order_payload(**change))


def test_real_iso_codes_pass_including_currencies_starting_with_x() -> None:
    for country, currency in (("NL", "EUR"), ("SN", "XOF"), ("CM", "XAF"), ("JP", "JPY")):
        payload = order_payload(currency=currency)
        payload["ship_to"] = {**payload["ship_to"], "country": country}
        assert OrderIn.model_validate(payload).currency == currency
