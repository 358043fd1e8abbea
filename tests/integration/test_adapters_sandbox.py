"""The adapters against the real sandbox servers on loopback: contract, idempotency, faults."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
import requests

from adapters.accounting import AccountingClient
from adapters.erp import ErpClient
from adapters.warehouse import WarehouseClient
from hub.core.errors import PermanentError, TransientError
from hub.core.ports.downstream import Line, Order, Reservation
from sandbox import DEFAULT_TOKENS, Sandbox, SandboxControl
from tests import support

LINES = [
    {"sku": "SKU-001", "qty": 2, "unit_price": "12.50"},
    {"sku": "SKU-002", "qty": 1, "unit_price": "3.10"},
]
SHIP_TO = {
    "name": "Ada",
    "line1": "1 Main St",
    "city": "Utrecht",
    "postal_code": "3511",
    "country": "NL",
}
CUSTOMER = {"id": "C-1", "name": "Ada", "email": "ada@example.com"}
O1 = uuid.UUID(int=1)


def order(order_id: uuid.UUID = O1, lines: Any = LINES) -> Order:
    return Order(
        id=order_id,
        customer=CUSTOMER,
        ship_to=SHIP_TO,
        currency="EUR",
        lines=tuple(
            Line(line["sku"], line["qty"], line.get("unit_price", "1.00")) for line in lines
        ),
    )


def stock(world: World, sku: str) -> dict[str, Any]:
    """The sandbox ERP's stock of one sku (GET /inventory/{sku} of the contract)."""
    return world.erp.get(f"/inventory/{quote(sku, safe='')}")


@dataclass(frozen=True)
class World:
    sandbox: Sandbox
    erp: ErpClient
    warehouse: WarehouseClient
    accounting: AccountingClient

    def control(self, system: str) -> SandboxControl:
        return self.sandbox.control(system)

    def effects(self, system: str, key: str) -> list[dict[str, Any]]:
        ledger = self.control(system).ledger()
        return [e for e in ledger["effects"] if e["idempotency_key"] == key]


def erp_client(url: str, *, token: str = DEFAULT_TOKENS["erp"], read: float = 5.0) -> ErpClient:
    return ErpClient(base_url=url, token=token, connect_timeout=2.0, read_timeout=read)


@pytest.fixture
def world() -> Iterator[World]:
    sandbox = Sandbox.start(host="127.0.0.1")
    try:
        yield World(
            sandbox=sandbox,
            erp=erp_client(sandbox.erp_url),
            warehouse=WarehouseClient(
                base_url=sandbox.warehouse_url, token=DEFAULT_TOKENS["warehouse"]
            ),
            accounting=AccountingClient(
                base_url=sandbox.accounting_url, token=DEFAULT_TOKENS["accounting"]
            ),
        )
    finally:
        sandbox.stop()


def reserve(world: World, order_id: uuid.UUID = O1, lines: Any = LINES) -> Reservation:
    return world.erp.reserve(order(order_id, lines), f"{order_id}:inventory")


def test_reserve_ship_invoice_happy_path(world: World) -> None:
    reservation = reserve(world)
    shipment = world.warehouse.ship(order(), reservation, f"{O1}:fulfillment")
    invoice = world.accounting.invoice(order(), shipment, f"{O1}:invoice")

    [reserved] = world.control("erp").ledger()["effects"]
    assert reserved["id"] == reservation.id
    assert shipment.carrier and shipment.tracking_number
    assert (invoice.total, invoice.currency) == ("28.10", "EUR")
    assert stock(world, "SKU-001") == {"sku": "SKU-001", "on_hand": 1_000_000, "reserved": 2}


def test_repeat_with_same_key_returns_same_ids_and_applies_once(world: World) -> None:
    first = reserve(world)
    second = reserve(world)

    assert second == first
    assert len(world.effects("erp", f"{O1}:inventory")) == 1
    assert stock(world, "SKU-001")["reserved"] == 2


def test_same_key_with_another_body_is_refused(world: World) -> None:
    reserve(world)

    with pytest.raises(PermanentError) as caught:
        reserve(world, lines=[{"sku": "SKU-001", "qty": 5}])

    assert (caught.value.status, caught.value.code) == (422, "idempotency_key_reuse")
    assert stock(world, "SKU-001")["reserved"] == 2


def test_write_without_key_is_a_400(world: World) -> None:
    with pytest.raises(PermanentError) as caught:
        world.erp.reserve(order(), "")

    assert caught.value.status == 400


def test_bad_body_is_a_422_validation_error(world: World) -> None:
    with pytest.raises(PermanentError) as caught:
        reserve(world, lines=[{"sku": "SKU-001", "qty": 0}])

    assert (caught.value.status, caught.value.code) == (422, "validation_error")
    assert "lines[0].qty" in caught.value.message


def test_out_of_stock_reserves_nothing(world: World) -> None:
    world.control("erp").set_stock({"SKU-001": 1})

    with pytest.raises(PermanentError) as caught:
        reserve(world)

    assert (caught.value.status, caught.value.code) == (409, "out_of_stock")
    assert stock(world, "SKU-001") == {"sku": "SKU-001", "on_hand": 1, "reserved": 0}
    assert stock(world, "SKU-002")["reserved"] == 0
    assert world.control("erp").ledger()["effects"] == []


def test_out_of_stock_then_restocked_replay_succeeds(world: World) -> None:
    world.control("erp").set_stock({"SKU-001": 1})
    with pytest.raises(PermanentError):
        reserve(world)

    world.control("erp").set_stock({"SKU-001": 10})

    assert reserve(world).id


def test_unknown_sku_is_out_of_stock(world: World) -> None:
    with pytest.raises(PermanentError) as caught:
        reserve(world, lines=[{"sku": "NOPE", "qty": 1}])

    assert (caught.value.status, caught.value.code) == (409, "out_of_stock")
    assert "unknown" in caught.value.message


def test_stock_of_unknown_sku_is_a_404(world: World) -> None:
    with pytest.raises(PermanentError) as caught:
        stock(world, "NOPE/../x")

    assert caught.value.status == 404


def test_unknown_reservation_is_a_404(world: World) -> None:
    with pytest.raises(PermanentError) as caught:
        world.warehouse.ship(order(), Reservation("rsv_missing"), f"{O1}:fulfillment")

    assert (caught.value.status, caught.value.code) == (404, "unknown_reservation")


def test_wrong_token_is_a_401_without_the_token(world: World) -> None:
    client = erp_client(world.sandbox.erp_url, token="wrong-secret")

    with pytest.raises(PermanentError) as caught:
        client.reserve(order(), f"{O1}:inventory")

    assert (caught.value.status, caught.value.code) == (401, "unauthorized")
    assert "wrong-secret" not in str(caught.value)
    assert "wrong-secret" not in repr(client)


def test_down_is_transient_with_retry_after_and_applies_nothing(world: World) -> None:
    world.control("erp").set_faults(down=True, retry_after=30)

    with pytest.raises(TransientError) as caught:
        reserve(world)

    assert (caught.value.status, caught.value.code) == (503, "down")
    assert caught.value.retry_after == 30.0
    ledger = world.control("erp").ledger()
    assert (ledger["calls"], ledger["effects"]) == (1, [])


def test_flaky_erp_fails_twice_then_works(world: World) -> None:
    world.control("erp").set_faults(fail_next=2, status=502)

    outcomes = []
    for _ in range(3):
        try:
            outcomes.append(bool(reserve(world).id))
        except TransientError as error:
            outcomes.append(error.status)

    assert outcomes == [502, 502, True]
    ledger = world.control("erp").ledger()
    assert (ledger["calls"], len(ledger["effects"])) == (3, 1)


def test_proxy_html_error_page_is_transient_and_readable(world: World) -> None:
    world.control("warehouse").set_faults(error_rate=1.0, status=429, retry_after=2, body="html")

    with pytest.raises(TransientError) as caught:
        world.warehouse.ship(order(), Reservation("rsv_x"), f"{O1}:fulfillment")

    assert (caught.value.status, caught.value.code, caught.value.retry_after) == (429, None, 2.0)
    assert "<" not in caught.value.message


def test_slow_answer_times_out_and_the_retry_gets_the_same_reservation(world: World) -> None:
    world.control("erp").set_faults(latency_ms=600)
    impatient = erp_client(world.sandbox.erp_url, read=0.1)

    with pytest.raises(TransientError) as caught:
        impatient.reserve(order(), f"{O1}:inventory")
    world.control("erp").clear_faults()
    retried = reserve(world)
    # The timed-out request still runs on the server: it must be answered before the check.
    support.wait_for(
        lambda: world.control("erp").ledger()["in_flight"] == 0,
        timeout=30,
        what="the timed-out request to finish on the ERP",
    )
    again = reserve(world)

    assert "timed out" in caught.value.message
    assert again == retried
    assert [e["id"] for e in world.effects("erp", f"{O1}:inventory")] == [retried.id]


def test_stopped_server_is_transient(world: World) -> None:
    reserve(world)  # leaves a pooled keep-alive connection behind
    world.sandbox.stop()

    with pytest.raises(TransientError) as caught:
        stock(world, "SKU-001")

    assert caught.value.status is None
    assert "connection failed" in caught.value.message


def test_concurrent_identical_reservations_apply_once(world: World) -> None:
    start = threading.Barrier(20)

    def attempt(_: int) -> str:
        start.wait()
        return reserve(world).id

    with ThreadPoolExecutor(max_workers=20) as pool:
        ids = set(pool.map(attempt, range(20)))

    assert len(ids) == 1
    assert len(world.effects("erp", f"{O1}:inventory")) == 1
    assert stock(world, "SKU-001")["reserved"] == 2


def test_faults_endpoint_refuses_unknown_fields(world: World) -> None:
    with pytest.raises(requests.HTTPError) as caught:
        world.control("erp").set_faults(explode=True)

    assert caught.value.response is not None
    assert caught.value.response.status_code == 422
    assert world.control("erp").faults()["down"] is False


def test_check_answers_while_the_system_is_up_and_says_why_not_once_it_stops(
    world: World,
) -> None:
    world.erp.check()
    world.sandbox.stop()

    with pytest.raises(TransientError) as caught:
        world.erp.check()

    assert caught.value.system_down
    assert "GET /_health" in caught.value.message
