"""The warehouse sandbox's shipments: which reservation each ships, and whether it has left."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Shipment:
    shipment_id: str
    order_id: str
    reservation_id: str
    created_at: float
    cancelled: bool = False


class Shipments:
    """Every shipment made; atomic under the shared lock.

    A shipment leaves the warehouse ``dispatch_after()`` seconds after it was made (read when
    asked, so a test can set the fault after the shipment exists); a cancelled one never does.
    """

    def __init__(self, lock: threading.RLock) -> None:
        self._lock = lock
        self._shipments: dict[str, Shipment] = {}
        self.dispatch_after: Callable[[], float | None] = lambda: None

    def add(self, shipment_id: str, order_id: str, reservation_id: str) -> Shipment:
        with self._lock:
            shipment = Shipment(shipment_id, order_id, reservation_id, time.monotonic())
            self._shipments[shipment_id] = shipment
            return shipment

    def get(self, shipment_id: str) -> Shipment | None:
        with self._lock:
            return self._shipments.get(shipment_id)

    def dispatched(self, shipment: Shipment) -> bool:
        """Whether the shipment has left (then it cannot be cancelled)."""
        after = self.dispatch_after()
        return (
            not shipment.cancelled
            and after is not None
            and time.monotonic() - shipment.created_at >= after
        )

    def consumed(self, reservation_id: str) -> bool:
        """Whether a shipment has left with this reservation's stock."""
        with self._lock:
            return any(
                s.reservation_id == reservation_id and self.dispatched(s)
                for s in self._shipments.values()
            )
