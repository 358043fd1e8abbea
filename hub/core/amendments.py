"""Correcting an order's data: which fields may change, and how a change is applied and shown.

A field may change only while no step that uses it has succeeded or is running: the reservation
uses the ``lines``, the shipment the ``ship_to`` address, the invoice the ``customer`` (and any
later step that reads it after it). A change after that would leave the hub's record saying one
thing and the downstream system another. Changes are whole top-level fields (``ship_to``,
``customer``, ``lines``), validated by the intake's own schema; the command line's ``--set
ship_to.postal_code=69002`` becomes such a change here. The command line changes a line's
``sku`` or ``qty`` by its position (``--set lines.0.qty=3``); ``PATCH`` sends the whole list of
lines.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from hub.core.schemas import Address, Customer, Line


class Lines(BaseModel):
    """An order's lines, checked as intake checks them."""

    lines: list[Line] = Field(min_length=1, max_length=100)


# The fields that may be amended, their schema, and the step that uses each (first).
AMENDABLE: Mapping[str, type[BaseModel]] = {
    "ship_to": Address,
    "customer": Customer,
    "lines": Lines,
}
# What ``--set lines.N.KEY=VALUE`` may change of a line (its price is the sender's business).
LINE_KEYS = ("sku", "qty")
USED_BY: Mapping[str, str] = {"lines": "inventory", "ship_to": "fulfillment", "customer": "invoice"}


class BadAmendment(ValueError):
    """The change is not one the hub takes (said in the message, naming the field)."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


def parse_sets(sets: list[str]) -> dict[str, dict[str, str]]:
    """``["ship_to.postal_code=69002", ...]`` -> ``{"ship_to": {"postal_code": "69002"}}``."""
    changes: dict[str, dict[str, str]] = {}
    for item in sets:
        path, sep, value = item.partition("=")
        field, dot, key = path.strip().partition(".")
        if not sep or not dot or not key:
            raise BadAmendment(
                f"{item!r}: say FIELD.KEY=VALUE, e.g. ship_to.postal_code=69002", field=path
            )
        if field not in AMENDABLE:
            raise BadAmendment(
                f"{field!r} cannot be amended (only {', '.join(AMENDABLE)})", field=field
            )
        changes.setdefault(field, {})[key] = value
    return changes


def line_dict(sku: str, qty: int, unit_price: Decimal | str) -> dict[str, Any]:
    """A line as the amendments compare and record it (the price to the column's 4 places)."""
    return {
        "sku": sku,
        "qty": qty,
        "unit_price": str(Decimal(unit_price).quantize(Decimal("0.0001"))),
    }


def _lines_changed(current: list[dict[str, Any]], change: Any) -> list[Any]:
    """The lines after ``change``: a whole list (``PATCH``) or ``{"N.key": value}`` edits."""
    if isinstance(change, list):
        return change
    lines = [dict(line) for line in current]
    for path, value in change.items():
        index, _, key = str(path).partition(".")
        if not index.isdigit() or int(index) >= len(lines) or key not in LINE_KEYS:
            raise BadAmendment(
                f"lines.{path}: say lines.N.sku or lines.N.qty, N from 0 to {len(lines) - 1}",
                field=f"lines.{path}",
            )
        # The command line and the form send text; the schema wants a whole number.
        is_number = key == "qty" and isinstance(value, str) and value.strip().isdigit()
        lines[int(index)][key] = int(value) if is_number else value
    return lines


def amended(current: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """The new value of each changed field (merged over ``current``), validated by the intake
    schema. Raises ``BadAmendment`` naming the first field that fails."""
    result: dict[str, Any] = {}
    for field, change in changes.items():
        schema = AMENDABLE.get(field)
        if schema is None:
            raise BadAmendment(
                f"{field!r} cannot be amended (only {', '.join(AMENDABLE)})", field=field
            )
        if field == "lines":
            wanted = _lines_changed(list(current.get("lines", [])), change)
            try:
                checked = Lines.model_validate({"lines": wanted})
            except ValidationError as exc:
                problem = exc.errors(include_url=False, include_input=False)[0]
                where = ".".join(str(part) for part in problem["loc"])
                raise BadAmendment(f"{where}: {problem['msg']}", field=where) from None
            result[field] = [line_dict(x.sku, x.qty, x.unit_price) for x in checked.lines]
            continue
        merged = {**current.get(field, {}), **change}
        try:
            result[field] = schema.model_validate(merged).model_dump(mode="json")
        except ValidationError as exc:
            problem = exc.errors(include_url=False, include_input=False)[0]
            where = ".".join([field, *(str(part) for part in problem["loc"])])
            raise BadAmendment(f"{where}: {problem['msg']}", field=where) from None
    return result


def refusal(field: str, step_statuses: Mapping[str, str]) -> str | None:
    """Why ``field`` may no longer change, given the order's step statuses, or None."""
    step = USED_BY.get(field)
    status = step_statuses.get(step) if step else None
    if status in ("succeeded", "running"):
        return f"{field} was already used by the {step} step ({status})"
    return None


def _flat(value: Any) -> Mapping[str, Any]:
    # Lines are compared by position: ``lines.0.qty``.
    if isinstance(value, list):
        return {f"{i}.{key}": item[key] for i, item in enumerate(value) for key in item}
    return dict(value)


def diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(field.key, old, new)`` for every value that changes."""
    rows = []
    for field, value in after.items():
        old, new = _flat(before.get(field, {})), _flat(value)
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                rows.append((f"{field}.{key}", old.get(key), new.get(key)))
    return rows
