"""The whole hub on a real Tryton: workers killed, Tryton killed, stock short, exactly once.

Orders (12 in the suite, 30 with ``make tryton-e2e``) go through the hub's real processes (API,
relay, two workers on the threads pool) with all three systems on one Tryton (a database copied
from the cached template, a server of the test's own that it SIGKILLs and starts again). Three
orders are for ``SKU-SCARCE``, which has no stock: they fail ``out_of_stock``, are restocked in
Tryton over its RPC and replayed with ``hub replay``. The proof is read from Tryton's own
tables, and ``hub reconcile`` must agree.

The hub's database, queue prefix and ports are its own (``<tests' database>_t``,
``<prefix>t``, ports tryton_hub and tryton_e2e of tests/ports.py), on the tests' broker.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from bench import records, state
from bench.load import post_until_accepted
from bench.stack import Stack
from hub.db.engine import unit_of_work
from hub.db.models import Failure
from hub.settings import get_settings
from sandbox.tryton import control
from sandbox.tryton.server import LocalTryton, TrytonSandbox, TrytonSetupError, local_tryton
from tests import ports, support
from tests.e2e.private import place
from tests.factories import order_payload

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
# The whole proof, 30 orders, in the suite too (54 s the test on a quiet machine, 25 s with 12;
# Tryton posts two invoices at most at once, docs/erp-tryton.md). HUB_TRYTON_E2E_ORDERS=12 is a
# quicker loop while working on the Tryton adapters.
ORDERS = int(os.environ.get("HUB_TRYTON_E2E_ORDERS", "30"))
SCARCE_AT = tuple(ORDERS * k // 3 + 1 for k in range(3))  # the orders for the sku without stock
SCARCE_QTY = 2


@dataclass
class TrytonHub:
    stack: Stack
    tryton: LocalTryton
    headers: dict[str, str]


@pytest.fixture(scope="module")
def hub() -> Iterator[TrytonHub]:
    support.require_services()
    prefix = os.environ["HUB_QUEUE_PREFIX"]
    saved = dict(os.environ)
    try:
        with local_tryton(f"hub_tryton_{prefix}_e2e", ports.port("tryton_e2e")) as tryton:
            place("t", hub="tryton_hub").apply(**tryton.hub_env())
            state.fresh_database()
            state.purge_queues()
            log_dir = ROOT / "var" / "test-logs" / get_settings().queue_prefix
            # Four threads a worker: enough to have calls of several orders in Tryton at once.
            stack = Stack(get_settings(), log_dir, workers=2, concurrency=4)
            try:
                stack.start()
                yield TrytonHub(stack, tryton, support.api_key_headers("tryton-e2e"))
            finally:
                stack.stop()
    except TrytonSetupError as exc:
        pytest.fail(f"this test needs a local Tryton (make tryton):\n{exc}", pytrace=False)
    finally:
        os.environ.clear()
        os.environ.update(saved)
        get_settings.cache_clear()


def kill_worker(hub: TrytonHub, n: int) -> None:
    """SIGKILL worker ``n`` with its pool, start it again, wait until this start is ready."""
    stack = hub.stack
    name = stack.worker_names[n - 1]
    child = stack.child(name)
    os.killpg(child.popen.pid, signal.SIGKILL)
    child.popen.wait(10)
    offset = child.log_path.stat().st_size
    stack.forget(child)
    started = stack.start_worker(name, wait=False)
    stack.supervisor.wait_until(
        started, lambda: b"ready." in started.log_path.read_bytes()[offset:], timeout=90
    )


def succeeded(step: str) -> int:
    return records.step_status_counts(step).get("succeeded", 0)


def settled(order_ids: list[str]) -> bool:
    found = support.statuses(order_ids)
    done = len(found) == len(order_ids) and set(found.values()) <= {"completed", "failed"}
    return done and records.unsent_outbox() == 0


def open_failures() -> set[tuple[str, str, str | None]]:
    with unit_of_work() as session:
        rows = session.execute(
            select(Failure.order_id, Failure.step, Failure.error_code).where(
                Failure.state == "open"
            )
        )
        return {(str(order_id), step, code) for order_id, step, code in rows}


def hub_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub", *args], capture_output=True, text=True, timeout=120
    )


def tryton_rows(database: str, query: str) -> list[tuple[object, ...]]:
    connection = TrytonSandbox().connect(database)
    try:
        with connection.cursor() as cursor:
            cursor.execute(query)
            return list(cursor.fetchall())
    finally:
        connection.close()


@pytest.mark.timeout(1200)
def test_orders_through_tryton_under_kills_exactly_once(hub: TrytonHub) -> None:
    url = f"{hub.stack.api_url}/orders"
    payloads = [
        order_payload(lines=[{"sku": "SKU-SCARCE", "qty": SCARCE_QTY, "unit_price": "7.00"}])
        if n in SCARCE_AT
        else order_payload(
            customer={"id": f"C-{n % 4}", "name": f"Customer {n % 4}", "email": "c@example.com"}
        )
        for n in range(ORDERS)
    ]
    accepted = [
        post_until_accepted(url, p, headers=hub.headers, give_up_after=60) for p in payloads
    ]
    orders = [o for o in accepted if o is not None]
    assert len(orders) == ORDERS, "every order was accepted"
    scarce = {orders[n] for n in SCARCE_AT}

    # The faults, each when the run has got that far (not at a fixed time).
    support.wait_for(lambda: succeeded("inventory") >= 3, timeout=180, what="3 reservations")
    kill_worker(hub, 1)
    shipped = ORDERS // 5
    support.wait_for(
        lambda: succeeded("fulfillment") >= shipped, timeout=240, what=f"{shipped} shipments"
    )
    hub.tryton.kill()  # mid-call for every thread that was in Tryton
    hub.tryton.start()
    invoiced = ORDERS * 2 // 5
    support.wait_for(
        lambda: succeeded("invoice") >= invoiced, timeout=300, what=f"{invoiced} invoices"
    )
    kill_worker(hub, 2)

    support.wait_for(lambda: settled(orders), timeout=600, what=f"{ORDERS} orders to end")
    statuses = support.statuses(orders)
    failed = {o for o, status in statuses.items() if status == "failed"}
    assert failed == scarce, statuses
    assert open_failures() == {(o, "inventory", "out_of_stock") for o in scarce}

    # Restocked in Tryton (an inventory, over its RPC), then replayed through the hub.
    control.restock(
        control.admin_rpc(hub.tryton.url, hub.tryton.database),
        {"SKU-SCARCE": SCARCE_QTY * len(scarce)},
    )
    replayed = hub_cli("replay", "--code", "out_of_stock", "--reason", "restocked in Tryton")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert f"replayed {len(scarce)}" in replayed.stdout, replayed.stdout
    support.wait_for(
        lambda: set(support.statuses(orders).values()) == {"completed"},
        timeout=300,
        what="the replayed orders to complete",
    )

    # Tryton's own tables: one sale per order, its one shipment done, its one invoice posted,
    # and nothing else (the database was a fresh copy of the template, which has no sales).
    database = hub.tryton.database
    sales = tryton_rows(database, "SELECT reference, state FROM sale_sale")
    assert sorted(r for r, _ in sales) == sorted(orders), "one sale per order, no other sale"
    per_sale = tryton_rows(
        database,
        """
        SELECT s.reference,
               count(DISTINCT sh.id), count(DISTINCT sh.id) FILTER (WHERE sh.state = 'done'),
               count(DISTINCT i.id), count(DISTINCT i.id) FILTER (WHERE i.state = 'posted')
        FROM sale_sale s
        JOIN sale_line l ON l.sale = s.id
        LEFT JOIN stock_move m ON m.origin = 'sale.line,' || l.id
        LEFT JOIN stock_shipment_out sh ON m.shipment = 'stock.shipment.out,' || sh.id
        LEFT JOIN account_invoice_line il ON il.origin = 'sale.line,' || l.id
        LEFT JOIN account_invoice i ON i.id = il.invoice
        GROUP BY s.reference
        """,
    )
    wrong = {ref: counts for ref, *counts in per_sale if counts != [1, 1, 1, 1]}
    assert wrong == {}, f"(shipments, done, invoices, posted) per sale: {wrong}"
    assert tryton_rows(database, "SELECT count(*) FROM stock_shipment_out") == [(ORDERS,)]
    assert tryton_rows(database, "SELECT count(*), type FROM account_invoice GROUP BY type") == [
        (ORDERS, "out")
    ], "no other invoice (nor a credit note)"

    reconciled = hub_cli("reconcile", "--at-rest", "--grace", "0")
    assert reconciled.returncode == 0, reconciled.stdout + reconciled.stderr
    assert "agree" in reconciled.stdout and f"{ORDERS} orders" in reconciled.stdout
