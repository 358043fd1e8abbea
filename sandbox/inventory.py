"""The ERP sandbox's stock: on hand, reserved, and the reservations the warehouse checks."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sandbox.protocol import ApiError

DEFAULT_SKUS = tuple(f"SKU-{n:03d}" for n in range(1, 21))
DEFAULT_ON_HAND = 1_000_000


def default_stock() -> dict[str, int]:
    """SKU-001..SKU-020 with a million each: enough that only a test that wants it runs out."""
    return dict.fromkeys(DEFAULT_SKUS, DEFAULT_ON_HAND)


@dataclass(frozen=True)
class Reservation:
    """Stock held for one order."""

    reservation_id: str
    order_id: str
    lines: tuple[tuple[str, int], ...]
    released: bool = False


class Inventory:
    """Stock levels and reservations; every method is atomic under the shared lock."""

    def __init__(self, stock: Mapping[str, int], lock: threading.RLock) -> None:
        self._lock = lock
        self._on_hand = dict(stock)
        self._reserved = dict.fromkeys(stock, 0)
        self._reservations: dict[str, Reservation] = {}

    def level(self, sku: str) -> dict[str, Any] | None:
        """{"sku", "on_hand", "reserved"}, or None for an unknown sku."""
        with self._lock:
            if sku not in self._on_hand:
                return None
            return {"sku": sku, "on_hand": self._on_hand[sku], "reserved": self._reserved[sku]}

    def set_on_hand(self, levels: Mapping[str, int]) -> None:
        """Set on-hand quantities (new skus appear); reservations are kept."""
        with self._lock:
            for sku, qty in levels.items():
                self._on_hand[sku] = qty
                self._reserved.setdefault(sku, 0)

    def reserve(self, order_id: str, lines: Sequence[Mapping[str, Any]]) -> Reservation:
        """Hold every line or nothing; a line that cannot be covered is a 409 out_of_stock."""
        wanted: dict[str, int] = {}
        for line in lines:
            wanted[line["sku"]] = wanted.get(line["sku"], 0) + line["qty"]
        with self._lock:
            for sku, qty in wanted.items():
                if sku not in self._on_hand:
                    raise ApiError(409, "out_of_stock", f"unknown sku {sku}", sku=sku)
                available = self._on_hand[sku] - self._reserved[sku]
                if qty > available:
                    raise ApiError(
                        409,
                        "out_of_stock",
                        f"{sku}: {qty} wanted, {max(available, 0)} available",
                        sku=sku,
                    )
            for sku, qty in wanted.items():
                self._reserved[sku] += qty
            reservation = Reservation(
                reservation_id=f"rsv_{uuid.uuid4().hex}",
                order_id=order_id,
                lines=tuple((line["sku"], line["qty"]) for line in lines),
            )
            self._reservations[reservation.reservation_id] = reservation
            return reservation

    def reservation(self, reservation_id: str) -> Reservation | None:
        """A reservation by id, or None."""
        with self._lock:
            return self._reservations.get(reservation_id)

    def release(self, reservation_id: str) -> Reservation:
        """Give the reservation's stock back; 404 for an unknown one, 409 if released before."""
        with self._lock:
            reservation = self._reservations.get(reservation_id)
            if reservation is None:
                raise ApiError(404, "unknown_reservation", f"no reservation {reservation_id}")
            if reservation.released:
                raise ApiError(409, "already_released", f"{reservation_id} was released before")
            for sku, qty in reservation.lines:
                self._reserved[sku] -= qty
            released = replace(reservation, released=True)
            self._reservations[reservation_id] = released
            return released
