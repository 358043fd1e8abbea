"""How Tryton's answers become the hub's errors (the table of tryton-notes, as a test)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from adapters.tryton.codec import decode, encode
from adapters.tryton.errors import classify_fault, classify_status
from hub.core.errors import PermanentError, TransientError


@pytest.mark.parametrize(
    ("fault", "kind", "code", "text"),
    [
        (
            ["UserError", ["Sale must be quoted.", "", None]],
            PermanentError,
            "tryton_user_error",
            "Sale must be quoted.",
        ),
        (
            ["UserWarning", ["stock_quote_123", "Not enough stock.", ""]],
            PermanentError,
            "tryton_warning",
            "Not enough stock.",
        ),
        (
            ["ConcurrencyException", "Records were modified in the meanwhile"],
            TransientError,
            "tryton_concurrency",
            "Records were modified",
        ),
        (
            ["'NoneType' object has no attribute 'id'", ""],
            TransientError,
            "tryton_server_error",
            "NoneType",
        ),
    ],
)
def test_a_fault_is_classified_with_trytons_message(
    fault: list[object], kind: type, code: str, text: str
) -> None:
    error = classify_fault("model.sale.sale.confirm", fault)
    assert isinstance(error, kind)
    assert error.code == code
    assert text in error.message
    assert "model.sale.sale.confirm" in error.message


@pytest.mark.parametrize(
    ("status", "kind"),
    [(503, TransientError), (500, TransientError), (403, PermanentError), (404, PermanentError)],
)
def test_a_status_is_classified(status: int, kind: type) -> None:
    error = classify_status("model.x.y", status, b"<html><h1>Service Unavailable</h1></html>")
    assert isinstance(error, kind)
    assert error.status == status


def test_money_travels_as_tryton_decimals_and_comes_back() -> None:
    wire = encode({"unit_price": Decimal("19.90"), "lines": [Decimal("1")]})
    assert wire == {
        "unit_price": {"__class__": "Decimal", "decimal": "19.90"},
        "lines": [{"__class__": "Decimal", "decimal": "1"}],
    }
    assert decode({"__class__": "Decimal", "decimal": "19.90"}) == Decimal("19.90")
