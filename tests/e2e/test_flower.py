"""A real Flower process next to the hub lists its tasks and their retries, behind basic auth."""

from __future__ import annotations

import ast
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from hub.broker.topology import Topology
from hub.demo.processes import Supervisor, http_ok
from hub.settings import get_settings
from tasks.app import app
from tests import ports, support
from tests.e2e.conftest import LOGS, Stack
from tests.e2e.test_failures import events, hub, post_one, view, wait_failed
from tests.e2e.test_flow import post_orders, wait_completed

FLOWER_PORT = ports.port("flower")
FLOWER_URL = f"http://127.0.0.1:{FLOWER_PORT}"
AUTH = ("flower-ops", "flower-test-password-8d1e")


@pytest.fixture(scope="module")
def flower(stack: Stack) -> Iterator[str]:
    supervisor = Supervisor(
        env={
            "HUB_FLOWER_PORT": str(FLOWER_PORT),
            "HUB_FLOWER_USER": AUTH[0],
            "HUB_FLOWER_PASSWORD": AUTH[1],
        },
        log_dir=LOGS,
    )
    if http_ok(f"{FLOWER_URL}/healthcheck")():
        pytest.fail(f"something else already answers on {FLOWER_URL}; stop it", pytrace=False)
    child = supervisor.hub("flower", "flower")
    try:
        supervisor.wait_until(child, http_ok(f"{FLOWER_URL}/healthcheck"), timeout=60)
        yield FLOWER_URL
    finally:
        supervisor.stop()


def tasks_of(order_ids: list[str]) -> list[dict[str, Any]]:
    """Flower's view of the hub's tasks for these orders (other hubs on the vhost left out)."""
    reply = requests.get(f"{FLOWER_URL}/api/tasks", auth=AUTH, timeout=10)
    reply.raise_for_status()
    tasks: dict[str, dict[str, Any]] = reply.json()
    return [
        task
        for task in tasks.values()
        if str(task.get("name", "")).startswith("hub.step.")
        and any(order_id in str(task.get("args")) for order_id in order_ids)
    ]


def test_flower_refuses_a_request_without_credentials(flower: str) -> None:
    assert requests.get(f"{flower}/api/tasks", timeout=10).status_code == 401
    wrong = requests.get(f"{flower}/api/tasks", auth=(AUTH[0], "guess"), timeout=10)
    assert wrong.status_code == 401


def test_flower_lists_the_hubs_tasks_with_the_retries_of_a_flaky_step(
    flower: str, stack: Stack
) -> None:
    # Workers send task events only once Flower has asked them to (at its start and every 5 s),
    # and Flower only sees events sent while it listens: post orders until it has seen one
    # order's tasks.
    def sees_a_new_order() -> bool:
        warm_up = post_orders(stack, 1)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if len(tasks_of(warm_up)) == 3:
                return True
            time.sleep(0.5)
        return False

    support.wait_for(sees_a_new_order, timeout=90, what="Flower to see an order's tasks")

    # When the ERP fails twice (503) before answering, and two more orders go through.
    stack.sandbox.set_faults("erp", fail_next=2, status=503)
    [flaky] = post_orders(stack, 1)
    wait_completed([flaky], timeout=90)
    steady = post_orders(stack, 2)
    wait_completed(steady, timeout=90)

    # Then Flower lists every step task of every order, the ERP step with its two retries,
    # and each task's arguments are the order id and nothing else.
    def listed() -> bool:
        seen = tasks_of([flaky, *steady])
        done = [t for t in seen if t.get("state") == "SUCCESS"]
        return len(done) == 9 and any((t.get("retries") or 0) >= 1 for t in seen)

    try:
        support.wait_for(listed, timeout=90, what="Flower to list 9 finished tasks, one retried")
    except BaseException:
        print(
            "Flower shows:",
            [(t["name"], t.get("state"), t.get("retries")) for t in tasks_of([flaky, *steady])],
        )
        raise
    for order_id in (flaky, *steady):
        mine = tasks_of([order_id])
        assert sorted(t["name"] for t in mine) == [
            "hub.step.fulfillment",
            "hub.step.inventory",
            "hub.step.invoice",
        ]
        # A first delivery shows a tuple's repr, a retried one a list's: the same one argument.
        assert [list(ast.literal_eval(t["args"])) for t in mine] == [[order_id]] * 3
        assert [t["kwargs"] for t in mine] == ["{}"] * 3
    [inventory] = [t for t in tasks_of([flaky]) if t["name"] == "hub.step.inventory"]
    # Two failed calls. Flower counts what its events told it (they are best effort, and a
    # breaker deferral adds one), so the test asks for the retries to show, not an exact count.
    assert inventory["retries"] >= 1
    assert inventory["state"] == "SUCCESS"


def test_a_step_sent_through_flower_for_a_discarded_order_is_refused_and_audited(
    flower: str, stack: Stack
) -> None:
    # An order that failed (out of stock) and that an operator discarded: do not ship.
    stack.sandbox.set_stock({"SKU-023": 0})
    order_id = post_one(stack, lines=[{"sku": "SKU-023", "qty": 1, "unit_price": "3.00"}])
    failure = wait_failed(order_id)
    discarded = hub(
        "discard", str(failure["id"]), "--operator", "ops-bob", "--reason", "do not ship"
    )
    assert discarded.returncode == 0, discarded.stderr
    calls_before = {
        system: stack.sandbox.ledger(system)["calls"] for system in ("warehouse", "accounting")
    }

    # Then someone asks for the shipment and the invoice anyway. Flower's write API is closed
    # (405, nothing sent), so the message comes straight from a broker user, as Flower's
    # async-apply would send it: the hub's records must refuse it, whoever sent it.
    for step in ("fulfillment", "invoice"):
        reply = requests.post(
            f"{flower}/api/task/async-apply/hub.step.{step}",
            json={"args": [order_id]},
            auth=AUTH,
            timeout=10,
        )
        assert reply.status_code == 405, reply.text
        app.send_task(f"hub.step.{step}", args=[order_id])  # routed by the app's routes

    def refused() -> list[dict[str, Any]]:
        return events(stack, order_id, "step.refused")

    support.wait_for(lambda: len(refused()) == 2, timeout=60, what="two step.refused rows")
    for event in refused():
        # Discarding cancels now; nothing had succeeded, so the order is cancelled at once.
        assert event["detail"]["reason"] == "order is cancelled"
        assert event["detail"]["asked"]["task"] == f"hub.step.{event['step']}"
    # Nothing reached the warehouse or accounting, and the order is still cancelled, unshipped.
    for system, calls in calls_before.items():
        ledger = stack.sandbox.ledger(system)
        assert ledger["calls"] == calls, system
        assert not [e for e in ledger["effects"] if e["order_id"] == order_id], system
    shown = view(stack, order_id)
    assert shown["status"] == "cancelled"
    assert shown["steps"]["fulfillment"]["attempts"] == 0


WRITES = {
    "run a task": "/api/task/async-apply/hub.step.inventory",
    "send a task": "/api/task/send-task/hub.step.inventory",
    "revoke and terminate": "/api/task/revoke/00000000-0000-0000-0000-000000000000?terminate=true",
    "shut a worker down": "/api/worker/shutdown/{worker}",
    "stop a step queue": "/api/worker/queue/cancel-consumer/{worker}?queue={queue}",
    "resize a pool": "/api/worker/pool/grow/{worker}?n=4",
}


@pytest.mark.parametrize("path", WRITES.values(), ids=WRITES.keys())
def test_a_flower_user_cannot_change_anything(flower: str, stack: Stack, path: str) -> None:
    prefix = get_settings().queue_prefix
    worker = f"{prefix}-worker1@{socket.gethostname()}"
    queue = Topology(prefix).queue_name("inventory")
    url = f"{flower}{path.format(worker=worker, queue=queue)}"
    reply = requests.post(url, auth=AUTH, timeout=10)
    assert reply.status_code == 405, reply.text
    # Reading still works, and the workers still consume every step queue: an order completes.
    assert requests.get(f"{flower}/api/workers", auth=AUTH, timeout=10).status_code == 200
    wait_completed(post_orders(stack, 1), timeout=90)
