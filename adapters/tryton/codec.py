"""Tryton's JSON: decimals, dates and bytes travel as ``{"__class__": ..., ...}`` objects."""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any


def encode(value: Any) -> Any:
    """A value with Decimals and dates in Tryton's wire form (money is never a float)."""
    if isinstance(value, Decimal):
        return {"__class__": "Decimal", "decimal": format(value, "f")}
    if isinstance(value, datetime.datetime):
        raise TypeError("datetimes are not sent to Tryton by the hub")
    if isinstance(value, datetime.date):
        return {"__class__": "date", "year": value.year, "month": value.month, "day": value.day}
    if isinstance(value, dict):
        return {key: encode(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [encode(item) for item in value]
    return value


def decode(obj: dict[str, Any]) -> Any:
    """``json.loads``'s object hook: Tryton's Decimal, date and datetime back to Python's."""
    kind = obj.get("__class__")
    if kind == "Decimal":
        return Decimal(obj["decimal"])
    if kind == "datetime":
        # Tryton's datetimes are naive UTC.
        return datetime.datetime(
            obj["year"],
            obj["month"],
            obj["day"],
            obj.get("hour", 0),
            obj.get("minute", 0),
            obj.get("second", 0),
            obj.get("microsecond", 0),
            tzinfo=datetime.UTC,
        )
    if kind == "date":
        return datetime.date(obj["year"], obj["month"], obj["day"])
    return obj
