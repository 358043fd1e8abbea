"""The sandbox servers' compensation endpoints (contracts, "Compensation") through the adapters."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from adapters.accounting import AccountingClient
from adapters.erp import ErpClient
from adapters.warehouse import WarehouseClient
from hub.core.errors import PermanentError
from hub.core.ports.downstream import Invoice, Line, Order, Reservation, Shipment
from sandbox import DEFAULT_TOKENS, Sandbox

LINES = [{"sku": "SKU-001", "qty": 2, "unit_price": "12.50"}]
SHIP_TO = {"name": "Ada", "line1": "1 Main St", "city": "Lyon", "postal_code": "69001"}
CUSTOMER = {"id": "C-1", "name": "Ada", "email": "ada@example.com"}
O1 = uuid.UUID(int=1)
O2 = uuid.UUID(int=2)


def order(order_id: uuid.UUID) -> Order:
    lines = tuple(Line(line["sku"], line["qty"], line["unit_price"]) for line in LINES)
    return Order(id=order_id, customer=CUSTOMER, ship_to=SHIP_TO, currency="EUR", lines=lines)


class World:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.erp = ErpClient(base_url=sandbox.erp_url, token=DEFAULT_TOKENS["erp"])
        self.warehouse = WarehouseClient(
            base_url=sandbox.warehouse_url, token=DEFAULT_TOKENS["warehouse"]
        )
        self.accounting = AccountingClient(
            base_url=sandbox.accounting_url, token=DEFAULT_TOKENS["accounting"]
        )

    def effects(self, system: str) -> list[dict[str, Any]]:
        effects: list[dict[str, Any]] = self.sandbox.control(system).ledger()["effects"]
        return effects

    def stock(self, sku: str) -> dict[str, Any]:
        return self.erp.get(f"/inventory/{sku}")

    def order(self) -> tuple[Reservation, Shipment, Invoice]:
        reservation = self.erp.reserve(order(O1), f"{O1}:inventory")
        shipment = self.warehouse.ship(order(O1), reservation, f"{O1}:fulfillment")
        invoice = self.accounting.invoice(order(O1), shipment, f"{O1}:invoice")
        return reservation, shipment, invoice


@pytest.fixture
def world() -> Iterator[World]:
    sandbox = Sandbox.start(host="127.0.0.1")
    try:
        yield World(sandbox)
    finally:
        sandbox.stop()


def undo_all(world: World, reservation: Reservation, shipment: Shipment, invoice: Invoice) -> None:
    world.accounting.credit(O1, invoice, "cancelled", f"{O1}:invoice:compensate")
    world.warehouse.cancel(O1, shipment, f"{O1}:fulfillment:compensate")
    world.erp.release(O1, reservation, f"{O1}:inventory:compensate")


def test_each_effect_is_undone_once_and_stays_in_the_ledger_beside_its_compensation(
    world: World,
) -> None:
    reservation, shipment, invoice = world.order()
    assert world.stock("SKU-001")["reserved"] == 2

    undo_all(world, reservation, shipment, invoice)
    undo_all(world, reservation, shipment, invoice)  # a repeat under the same keys: harmless

    assert world.stock("SKU-001")["reserved"] == 0
    undone_ids = (("erp", reservation.id), ("warehouse", shipment.id), ("accounting", invoice.id))
    for system, undone in undone_ids:
        effects = world.effects(system)
        assert [e["id"] for e in effects if "compensates" not in e] == [undone]
        assert [e["compensates"] for e in effects if "compensates" in e] == [undone]
    credit = next(e for e in world.effects("accounting") if "compensates" in e)
    assert credit["idempotency_key"] == f"{O1}:invoice:compensate"
    assert world.effects("warehouse")[0]["ship_to"] == SHIP_TO


def test_a_second_compensation_under_another_key_is_refused(world: World) -> None:
    reservation, shipment, invoice = world.order()
    undo_all(world, reservation, shipment, invoice)

    with pytest.raises(PermanentError) as released:
        world.erp.release(O1, reservation, "other")
    with pytest.raises(PermanentError) as cancelled:
        world.warehouse.cancel(O1, shipment, "x")
    with pytest.raises(PermanentError) as credited:
        world.accounting.credit(O1, invoice, "again", "y")

    assert (released.value.status, released.value.code) == (409, "already_released")
    assert (cancelled.value.status, cancelled.value.code) == (409, "already_cancelled")
    assert (credited.value.status, credited.value.code) == (409, "already_credited")
    assert world.stock("SKU-001")["reserved"] == 0


def test_unknown_ids_are_404s_naming_what_is_unknown(world: World) -> None:
    with pytest.raises(PermanentError) as reservation:
        world.erp.release(O1, Reservation("rsv_nope"), "a")
    with pytest.raises(PermanentError) as shipment:
        world.warehouse.cancel(O1, Shipment("shp_nope"), "b")
    with pytest.raises(PermanentError) as invoice:
        world.accounting.credit(O1, Invoice("inv_nope"), "r", "c")

    assert (reservation.value.status, reservation.value.code) == (404, "unknown_reservation")
    assert (shipment.value.status, shipment.value.code) == (404, "unknown_shipment")
    assert (invoice.value.status, invoice.value.code) == (404, "unknown_invoice")


def test_a_shipment_that_left_cannot_be_cancelled_nor_its_stock_released(world: World) -> None:
    reservation, shipment, _ = world.order()
    # Shipments leave 0 s after they are made: this one has left already.
    world.sandbox.control("warehouse").set_faults(dispatch_after_s=0)

    with pytest.raises(PermanentError) as cancel:
        world.warehouse.cancel(O1, shipment, "k1")
    with pytest.raises(PermanentError) as release:
        world.erp.release(O1, reservation, "k2")

    assert (cancel.value.status, cancel.value.code) == (409, "already_dispatched")
    assert (release.value.status, release.value.code) == (409, "already_consumed")
    assert [e for e in world.effects("warehouse") if "compensates" in e] == []
    assert world.stock("SKU-001")["reserved"] == 2


def test_a_cancelled_shipment_never_leaves(world: World) -> None:
    _, shipment, _ = world.order()
    world.warehouse.cancel(O1, shipment, "k")
    world.sandbox.control("warehouse").set_faults(dispatch_after_s=0)

    world.warehouse.cancel(O1, shipment, "k")  # its repeat, after the dispatch time

    cancels = [e for e in world.effects("warehouse") if "compensates" in e]
    assert [e["compensates"] for e in cancels] == [shipment.id]


def test_another_orders_effect_is_not_undone(world: World) -> None:
    reservation, _, _ = world.order()

    with pytest.raises(PermanentError) as caught:
        world.erp.release(O2, reservation, "o-2:x")

    assert caught.value.status == 422
    assert world.stock("SKU-001")["reserved"] == 2


def test_bad_dispatch_setting_is_refused_by_name(world: World) -> None:

    response = requests.post(
        world.sandbox.warehouse_url + "/_faults", json={"dispatch_after_s": -1}, timeout=5
    )

    assert response.status_code == 422
    assert "dispatch_after_s" in response.json()["detail"]
