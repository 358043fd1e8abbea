"""Tryton as the hub's three ports: the ERP's ``Inventory``, the warehouse's ``Fulfillment`` and
the accounting's ``Invoicing`` (chosen per system by ``HUB_<SYSTEM>_ADAPTER=tryton``).

Tryton takes no idempotency key: each call runs under the step's lease (named by the key), so no
two deliveries of one order's step reach Tryton at the same moment, and the workflow finds what
an earlier attempt did before it acts.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager

from adapters.tryton.workflow import TrytonWorkflow
from hub.core.ports.downstream import (
    CreditNote,
    Invoice,
    Order,
    Reservation,
    Shipment,
)

# Held while one call of a step runs, by its idempotency key (the hub's is hub.db.lease).
Lease = Callable[[str], AbstractContextManager[None]]


class TrytonSystem:
    def __init__(self, workflow: TrytonWorkflow, lease: Lease) -> None:
        self.workflow = workflow
        self.lease = lease

    def check(self) -> None:
        """Tryton answers and the hub's user can log in and read sales."""
        self.workflow.rpc.call("model.sale.sale.search_count", [])


class TrytonInventory(TrytonSystem):
    def reserve(self, order: Order, key: str) -> Reservation:
        with self.lease(key):
            return Reservation(self.workflow.reserve(order).number)

    def release(self, order_id: uuid.UUID, reservation: Reservation, key: str) -> None:
        with self.lease(key):
            self.workflow.release(order_id)


class TrytonFulfillment(TrytonSystem):
    def ship(self, order: Order, reservation: Reservation, key: str) -> Shipment:
        with self.lease(key):
            done = self.workflow.ship(order)
        return Shipment(done.number)

    def cancel(self, order_id: uuid.UUID, shipment: Shipment, key: str) -> None:
        # A shipment done has left the warehouse: Tryton undoes it by a customer return.
        with self.lease(key):
            self.workflow.unship(order_id)


class TrytonInvoicing(TrytonSystem):
    def invoice(self, order: Order, shipment: Shipment, key: str) -> Invoice:
        with self.lease(key):
            done = self.workflow.invoice(order)
        return Invoice(done.number, total=str(done.result["total"]), currency=order.currency)

    def credit(self, order_id: uuid.UUID, invoice: Invoice, reason: str, key: str) -> CreditNote:
        with self.lease(key):
            done = self.workflow.credit(order_id)
        return CreditNote(done.number, total=invoice.total)
