"""A real Flower process next to the hub lists its tasks and their retries, behind basic auth."""

from __future__ import annotations

import ast
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from hub.demo.processes import Supervisor, http_ok
from tests import support
from tests.conftest import PORT_BASE
from tests.e2e.conftest import LOGS, Stack
from tests.e2e.test_flow import post_orders, wait_completed

FLOWER_PORT = PORT_BASE + 5
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
