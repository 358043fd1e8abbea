"""API -> relay -> two worker processes -> sandbox systems -> completed, exactly once each."""

from __future__ import annotations

import os
import signal
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from hub.demo.processes import Child
from hub.settings import get_settings
from tests import support
from tests.e2e.conftest import Stack
from tests.factories import order_payload


def post_orders(stack: Stack, count: int, *, clients: int = 8) -> list[str]:
    session = requests.Session()
    session.headers.update(stack.headers)

    def post(_: int) -> str:
        response = session.post(f"{stack.api_url}/orders", json=order_payload(), timeout=10)
        assert response.status_code == 202, response.text
        order_id: str = response.json()["order_id"]
        return order_id

    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(post, range(count)))


def assert_exactly_once(stack: Stack, order_ids: list[str]) -> None:
    effects = stack.sandbox.effects_per_key()
    for step in get_settings().pipeline.steps:
        keys = {f"{order_id}:{step}" for order_id in order_ids}
        counted = {key: n for key, n in effects[step].items() if key in keys}
        assert set(counted) == keys, f"{step}: {len(keys - set(counted))} orders have no effect"
        doubled = {key: n for key, n in counted.items() if n != 1}
        assert not doubled, f"{step}: applied more than once: {doubled}"


def wait_completed(order_ids: list[str], *, timeout: float) -> None:
    def done() -> bool:
        found = support.statuses(order_ids)
        return len(found) == len(order_ids) and set(found.values()) == {"completed"}

    support.wait_for(done, timeout=timeout, what=f"{len(order_ids)} orders to complete")


def test_a_batch_of_orders_completes_with_one_effect_per_order_and_step(stack: Stack) -> None:
    order_ids = post_orders(stack, 200)

    wait_completed(order_ids, timeout=180)

    assert_exactly_once(stack, order_ids)
    timeline: list[dict[str, Any]] = requests.get(
        f"{stack.api_url}/orders/{order_ids[0]}", headers=stack.headers, timeout=5
    ).json()["timeline"]
    kinds = [event["event_type"] for event in timeline]
    # The fast path marks the row queued after the broker's confirm, so a quick worker may
    # start the first step before that audit row is committed.
    assert kinds[0] == "order.received" and "order.queued" in kinds
    assert kinds[-1] == "order.completed"
    assert kinds.count("step.succeeded") == 3
    succeeded = [e for e in timeline if e["event_type"] == "step.succeeded"]
    assert all(e["detail"]["downstream_id"] and "duration_ms" in e["detail"] for e in succeeded)


def worker_holding(stack: Stack, step: str) -> Child:
    def holder() -> Child | None:
        for name in ("worker1", "worker2"):
            child = stack.child(name)
            assert isinstance(child, Child)
            if f"hub.step.{step}[" in child.log_tail(400):
                return child
        return None

    support.wait_for(lambda: holder() is not None, timeout=30, what=f"a worker to take {step}")
    found = holder()
    assert found is not None
    return found


def step_started(stack: Stack, order_id: str, step: str) -> bool:
    view = requests.get(
        f"{stack.api_url}/orders/{order_id}", headers=stack.headers, timeout=5
    ).json()
    return any(e["event_type"] == "step.started" and e["step"] == step for e in view["timeline"])


def test_a_worker_killed_mid_step_leaves_the_order_to_complete_once(stack: Stack) -> None:
    # The ERP answers slowly, so the kill lands while the worker waits on its reply.
    stack.sandbox.set_faults("erp", latency_ms=3000)
    for name in ("worker1", "worker2"):
        child = stack.child(name)
        assert isinstance(child, Child)
        child.log_path.write_text("")  # so the log shows only this order's tasks
    [order_id] = post_orders(stack, 1)
    support.wait_for(
        lambda: step_started(stack, order_id, "inventory"),
        timeout=30,
        what="the inventory step to start",
    )
    victim = worker_holding(stack, "inventory")

    os.killpg(victim.popen.pid, signal.SIGKILL)  # main process and its pool children
    victim.popen.wait(10)
    stack.supervisor.children.remove(victim)
    stack.sandbox.clear_faults()
    stack.start_worker(victim.name)

    wait_completed([order_id], timeout=90)
    assert_exactly_once(stack, [order_id])
    inventory = requests.get(
        f"{stack.api_url}/orders/{order_id}", headers=stack.headers, timeout=5
    ).json()
    assert inventory["steps"]["inventory"]["attempts"] >= 2, "the step ran again after the kill"
    assert uuid.UUID(order_id)
