"""The downstream systems as ports: what each step asks of its system, in the hub's own types.

An adapter implements one of these protocols for one kind of system (``adapters.erp`` over the
HTTP contract, say); ``hub.bootstrap`` picks the adapter of each system from the settings
(``HUB_<SYSTEM>_ADAPTER``), and the pipeline never knows which one it talks to. Every adapter
raises only ``hub.core.errors`` (transient or permanent), never its library's errors.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Line:
    sku: str
    qty: int
    # Money as a decimal string, never a float.
    unit_price: str


@dataclass(frozen=True)
class Order:
    """What a downstream call needs to know of an order."""

    id: uuid.UUID
    customer: dict[str, Any]
    ship_to: dict[str, Any]
    currency: str
    lines: tuple[Line, ...]


@dataclass(frozen=True)
class Reservation:
    id: str


@dataclass(frozen=True)
class Shipment:
    id: str
    carrier: str = ""
    tracking_number: str = ""


@dataclass(frozen=True)
class Invoice:
    id: str
    # A decimal string.
    total: str = ""
    currency: str = ""


@dataclass(frozen=True)
class CreditNote:
    id: str
    # A decimal string: the invoice's total.
    total: str = ""


@dataclass(frozen=True)
class Notification:
    """One message to an order's customer."""

    order_id: uuid.UUID
    to_address: str
    to_name: str
    subject: str
    body: str


@dataclass(frozen=True)
class Notified:
    # The message's id, stable per order and step: sending it again is recognisable as a repeat.
    message_id: str


class SystemAdapter(Protocol):
    def check(self) -> None:
        """Return when the system answers; raise a ``DownstreamError`` saying why not (stack
        starters and ``hub doctor`` wait on this)."""


class Inventory(SystemAdapter, Protocol):
    def reserve(self, order: Order, key: str) -> Reservation:
        """Reserve every line or nothing (out of stock: a permanent error)."""

    def release(self, order_id: uuid.UUID, reservation: Reservation, key: str) -> None:
        """Give the reservation's stock back (compensation; stock already shipped: permanent)."""


class Fulfillment(SystemAdapter, Protocol):
    def ship(self, order: Order, reservation: Reservation, key: str) -> Shipment:
        """Ship the reserved order."""

    def cancel(self, order_id: uuid.UUID, shipment: Shipment, key: str) -> None:
        """Cancel the shipment (compensation; one that has left: a permanent error)."""


class Invoicing(SystemAdapter, Protocol):
    def invoice(self, order: Order, shipment: Shipment, key: str) -> Invoice:
        """Invoice the shipped order."""

    def credit(self, order_id: uuid.UUID, invoice: Invoice, reason: str, key: str) -> CreditNote:
        """Credit the invoice in full (compensation)."""


class Notifier(SystemAdapter, Protocol):
    def notify(self, notification: Notification, key: str) -> Notified:
        """Deliver the message once: the same key is the same message."""
