"""The adapters against the real sandbox servers on loopback: contract, idempotency, faults."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from adapters.accounting import AccountingClient
from adapters.erp import ErpClient
from adapters.sandbox import DEFAULT_TOKENS, Sandbox, SandboxControl
from adapters.warehouse import WarehouseClient
from hub.core.errors import PermanentError, TransientError

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
    sandbox = Sandbox.start(host="127.0.0.1", ports=(0, 0, 0))
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


def reserve(world: World, order_id: str = "o-1", lines: Any = LINES) -> dict[str, Any]:
    key = f"{order_id}:inventory"
    return world.erp.reserve(order_id=order_id, lines=lines, idempotency_key=key)


def test_reserve_ship_invoice_happy_path(world: World) -> None:
    reservation = reserve(world)
    shipment = world.warehouse.create_shipment(
        order_id="o-1",
        reservation_id=reservation["reservation_id"],
        ship_to=SHIP_TO,
        lines=LINES,
        idempotency_key="o-1:fulfillment",
    )
    invoice = world.accounting.create_invoice(
        order_id="o-1",
        customer=CUSTOMER,
        currency="EUR",
        lines=LINES,
        shipment_id=shipment["shipment_id"],
        idempotency_key="o-1:invoice",
    )

    assert reservation["order_id"] == "o-1"
    assert reservation["lines"] == [{"sku": "SKU-001", "qty": 2}, {"sku": "SKU-002", "qty": 1}]
    assert shipment["carrier"] and shipment["tracking_number"]
    assert invoice == {
        "invoice_id": invoice["invoice_id"],
        "order_id": "o-1",
        "total": "28.10",
        "currency": "EUR",
    }
    assert world.erp.stock("SKU-001") == {"sku": "SKU-001", "on_hand": 1_000_000, "reserved": 2}


def test_repeat_with_same_key_returns_same_ids_and_applies_once(world: World) -> None:
    first = reserve(world)
    second = reserve(world)

    assert second == first
    assert len(world.effects("erp", "o-1:inventory")) == 1
    assert world.erp.stock("SKU-001")["reserved"] == 2


def test_same_key_with_another_body_is_refused(world: World) -> None:
    reserve(world)

    with pytest.raises(PermanentError) as caught:
        reserve(world, lines=[{"sku": "SKU-001", "qty": 5}])

    assert (caught.value.status, caught.value.code) == (422, "idempotency_key_reuse")
    assert world.erp.stock("SKU-001")["reserved"] == 2


def test_write_without_key_is_a_400(world: World) -> None:
    with pytest.raises(PermanentError) as caught:
        world.erp.reserve(order_id="o-1", lines=LINES, idempotency_key="")

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
    assert world.erp.stock("SKU-001") == {"sku": "SKU-001", "on_hand": 1, "reserved": 0}
    assert world.erp.stock("SKU-002")["reserved"] == 0
    assert world.control("erp").ledger()["effects"] == []


def test_out_of_stock_then_restocked_replay_succeeds(world: World) -> None:
    world.control("erp").set_stock({"SKU-001": 1})
    with pytest.raises(PermanentError):
        reserve(world)

    world.control("erp").set_stock({"SKU-001": 10})

    assert reserve(world)["order_id"] == "o-1"


def test_unknown_sku_is_out_of_stock(world: World) -> None:
    with pytest.raises(PermanentError) as caught:
        reserve(world, lines=[{"sku": "NOPE", "qty": 1}])

    assert (caught.value.status, caught.value.code) == (409, "out_of_stock")
    assert "unknown" in caught.value.message


def test_stock_of_unknown_sku_is_a_404(world: World) -> None:
    with pytest.raises(PermanentError) as caught:
        world.erp.stock("NOPE/../x")

    assert caught.value.status == 404


def test_unknown_reservation_is_a_404(world: World) -> None:
    with pytest.raises(PermanentError) as caught:
        world.warehouse.create_shipment(
            order_id="o-1",
            reservation_id="rsv_missing",
            ship_to=SHIP_TO,
            lines=LINES,
            idempotency_key="o-1:fulfillment",
        )

    assert (caught.value.status, caught.value.code) == (404, "unknown_reservation")


def test_wrong_token_is_a_401_without_the_token(world: World) -> None:
    client = erp_client(world.sandbox.erp_url, token="wrong-secret")

    with pytest.raises(PermanentError) as caught:
        client.reserve(order_id="o-1", lines=LINES, idempotency_key="o-1:inventory")

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
            outcomes.append(reserve(world)["order_id"])
        except TransientError as error:
            outcomes.append(error.status)

    assert outcomes == [502, 502, "o-1"]
    ledger = world.control("erp").ledger()
    assert (ledger["calls"], len(ledger["effects"])) == (3, 1)


def test_proxy_html_error_page_is_transient_and_readable(world: World) -> None:
    world.control("warehouse").set_faults(error_rate=1.0, status=429, retry_after=2, body="html")

    with pytest.raises(TransientError) as caught:
        world.warehouse.create_shipment(
            order_id="o-1",
            reservation_id="rsv_x",
            ship_to=SHIP_TO,
            lines=LINES,
            idempotency_key="o-1:fulfillment",
        )

    assert (caught.value.status, caught.value.code, caught.value.retry_after) == (429, None, 2.0)
    assert "<" not in caught.value.message


def test_slow_answer_times_out_and_the_retry_gets_the_same_reservation(world: World) -> None:
    world.control("erp").set_faults(latency_ms=600)
    impatient = erp_client(world.sandbox.erp_url, read=0.1)

    with pytest.raises(TransientError) as caught:
        impatient.reserve(order_id="o-1", lines=LINES, idempotency_key="o-1:inventory")
    world.control("erp").clear_faults()
    retried = reserve(world)
    time.sleep(0.7)  # let the timed-out request finish on the server
    again = reserve(world)

    assert "timed out" in caught.value.message
    assert again == retried
    assert [e["id"] for e in world.effects("erp", "o-1:inventory")] == [retried["reservation_id"]]


def test_stopped_server_is_transient(world: World) -> None:
    reserve(world)  # leaves a pooled keep-alive connection behind
    world.sandbox.stop()

    with pytest.raises(TransientError) as caught:
        world.erp.stock("SKU-001")

    assert caught.value.status is None
    assert "connection failed" in caught.value.message


def test_concurrent_identical_reservations_apply_once(world: World) -> None:
    start = threading.Barrier(20)

    def attempt(_: int) -> str:
        start.wait()
        return str(reserve(world)["reservation_id"])

    with ThreadPoolExecutor(max_workers=20) as pool:
        ids = set(pool.map(attempt, range(20)))

    assert len(ids) == 1
    assert len(world.effects("erp", "o-1:inventory")) == 1
    assert world.erp.stock("SKU-001")["reserved"] == 2


def test_faults_endpoint_refuses_unknown_fields(world: World) -> None:
    with pytest.raises(requests.HTTPError) as caught:
        world.control("erp").set_faults(explode=True)

    assert caught.value.response is not None
    assert caught.value.response.status_code == 422
    assert world.control("erp").faults()["down"] is False


def test_keep_alive_posts_are_fast(world: World) -> None:
    # A Nagle/delayed-ACK regression makes each keep-alive answer ~40 ms: 300 would take 12 s.
    reserve(world, "warm-up")
    started = time.perf_counter()
    for n in range(300):
        reserve(world, f"fast-{n}", lines=[{"sku": "SKU-003", "qty": 1}])
    elapsed = time.perf_counter() - started

    assert elapsed < 3.0, f"300 POSTs took {elapsed:.2f}s"
