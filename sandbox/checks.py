"""Validation of request bodies: each check names the field it refuses (422 validation_error)."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Protocol, TypeVar

from sandbox.protocol import ApiError

_MONEY = re.compile(r"^\d{1,15}(\.\d{1,6})?$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
MAX_TEXT = 200
MAX_LINES = 500


def invalid(detail: str) -> ApiError:
    """A 422 validation_error."""
    return ApiError(422, "validation_error", detail)


class _OfAnOrder(Protocol):
    @property
    def order_id(self) -> str: ...


Record = TypeVar("Record", bound=_OfAnOrder)


def owned(found: Record | None, what: str, key: str, order_id: str) -> Record:
    """Record ``key`` if it exists (else 404 unknown_<what>) and is ``order_id``'s (else 422)."""
    if found is None:
        raise ApiError(404, f"unknown_{what}", f"no {what} {key}")
    if found.order_id != order_id:
        raise invalid(f"{what} {key} belongs to another order")
    return found


def obj(value: Any, where: str) -> dict[str, Any]:
    """A JSON object."""
    if not isinstance(value, dict):
        raise invalid(f"{where} must be a JSON object")
    return value


def text(body: dict[str, Any], field: str, where: str | None = None) -> str:
    """A non-empty string field."""
    value = body.get(field)
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
        name = where or field
        raise invalid(f"{name} must be a non-empty string of at most {MAX_TEXT} characters")
    return value


def positive_int(value: Any, where: str) -> int:
    """An integer > 0 (a JSON true is not 1)."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise invalid(f"{where} must be an integer > 0")
    return value


def money(value: Any, where: str) -> Decimal:
    """A non-negative decimal string; a JSON number is refused, money is never a float."""
    if not isinstance(value, str) or not _MONEY.match(value):
        raise invalid(f'{where} must be a decimal string like "12.50"')
    return Decimal(value)


def currency(body: dict[str, Any]) -> str:
    """An ISO 4217 code."""
    value = body.get("currency")
    if not isinstance(value, str) or not _CURRENCY.match(value):
        raise invalid('currency must be an ISO 4217 code like "EUR"')
    return value


def lines(body: dict[str, Any], *, priced: bool = False) -> list[dict[str, Any]]:
    """A non-empty list of {"sku", "qty"} (and "unit_price" when priced), normalized."""
    value = body.get("lines")
    if not isinstance(value, list) or not value or len(value) > MAX_LINES:
        raise invalid(f"lines must be a non-empty list of at most {MAX_LINES} lines")
    result = []
    for index, raw in enumerate(value):
        line = obj(raw, f"lines[{index}]")
        item: dict[str, Any] = {
            "sku": text(line, "sku", f"lines[{index}].sku"),
            "qty": positive_int(line.get("qty"), f"lines[{index}].qty"),
        }
        if priced:
            item["unit_price"] = money(line.get("unit_price"), f"lines[{index}].unit_price")
        result.append(item)
    return result
