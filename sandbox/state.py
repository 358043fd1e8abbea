"""State the three sandbox servers of one process share: the warehouse reads ERP reservations."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

from sandbox.inventory import Inventory, default_stock
from sandbox.shipments import Shipments


@dataclass(frozen=True)
class SandboxState:
    """One lock for every write, so idempotency check, effect and record are a single step."""

    lock: threading.RLock
    inventory: Inventory
    shipments: Shipments

    @classmethod
    def create(cls, stock: Mapping[str, int] | None = None) -> SandboxState:
        """Fresh state with the given stock (default: SKU-001..SKU-020, a million each)."""
        lock = threading.RLock()
        levels = default_stock() if stock is None else stock
        return cls(lock=lock, inventory=Inventory(levels, lock), shipments=Shipments(lock))
