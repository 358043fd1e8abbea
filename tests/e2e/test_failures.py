"""Failures done right, against the sandbox's fault injection, real broker and workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import datetime
from typing import Any

import requests
from sqlalchemy import text

from hub.db.engine import get_engine
from hub.demo.processes import Child
from tests import support
from tests.e2e.conftest import Stack
from tests.e2e.test_flow import assert_exactly_once, post_orders, wait_completed
from tests.factories import order_payload


def view(stack: Stack, order_id: str) -> dict[str, Any]:
    reply: dict[str, Any] = requests.get(
        f"{stack.api_url}/orders/{order_id}", headers=stack.headers, timeout=5
    ).json()
    return reply


def events(stack: Stack, order_id: str, kind: str) -> list[dict[str, Any]]:
    return [e for e in view(stack, order_id)["timeline"] if e["event_type"] == kind]


def open_failures(order_id: str) -> list[dict[str, Any]]:
    with get_engine().connect() as connection:
        rows = connection.execute(
            text("SELECT * FROM failures WHERE order_id::text = :id AND state = 'open'"),
            {"id": order_id},
        )
        return [dict(row._mapping) for row in rows]


def wait_failed(order_id: str, *, timeout: float = 60) -> dict[str, Any]:
    support.wait_for(
        lambda: bool(open_failures(order_id)),
        timeout=timeout,
        what=f"a failure record for {order_id}",
    )
    [failure] = open_failures(order_id)
    return failure


def hub(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def at(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["at"])


def post_one(stack: Stack, **overrides: Any) -> str:
    reply = requests.post(
        f"{stack.api_url}/orders",
        json=order_payload(**overrides),
        headers=stack.headers,
        timeout=10,
    )
    assert reply.status_code == 202, reply.text
    order_id: str = reply.json()["order_id"]
    return order_id


def test_a_flaky_erp_is_retried_with_growing_backoff_until_the_order_completes(
    stack: Stack,
) -> None:
    stack.sandbox.set_faults("erp", fail_next=3, status=503)

    [order_id] = post_orders(stack, 1)
    wait_completed([order_id], timeout=60)

    retries = events(stack, order_id, "step.retry_scheduled")
    assert [r["attempt"] for r in retries] == [1, 2, 3]
    ceilings = [r["detail"]["backoff_ceiling_s"] for r in retries]
    assert ceilings == sorted(ceilings) and ceilings[0] < ceilings[-1]
    assert all(
        1 <= r["detail"]["delay_s"] <= max(1, r["detail"]["backoff_ceiling_s"]) for r in retries
    )
    assert all(r["detail"]["http_status"] == 503 for r in retries)
    assert_exactly_once(stack, [order_id])


def test_retry_after_from_a_429_is_honoured_as_the_next_delay(stack: Stack) -> None:
    stack.sandbox.set_faults("erp", fail_next=1, status=429, retry_after=2)

    [order_id] = post_orders(stack, 1)
    wait_completed([order_id], timeout=60)

    failed = next(iter(events(stack, order_id, "step.failed")))
    second = next(e for e in events(stack, order_id, "step.started") if e["attempt"] == 2)
    assert failed["detail"]["http_status"] == 429
    assert events(stack, order_id, "step.retry_scheduled")[0]["detail"]["delay_s"] == 2
    assert (at(second) - at(failed)).total_seconds() >= 2


def test_a_retry_waits_inside_rabbitmq_not_in_the_worker(stack: Stack) -> None:
    stack.sandbox.set_faults("erp", fail_next=1, status=503, retry_after=12)

    [order_id] = post_orders(stack, 1)
    support.wait_for(
        lambda: bool(events(stack, order_id, "step.retry_scheduled")),
        timeout=30,
        what="the retry to be scheduled",
    )

    def delayed_messages() -> int:
        return sum(support.queue_depth(f"celery_delayed_{level}") for level in range(28))

    support.wait_for(
        lambda: delayed_messages() >= 1, timeout=10, what="the retry in a celery_delayed_* queue"
    )
    from tasks.app import app

    inspect = app.control.inspect(timeout=2)
    held = [*(inspect.scheduled() or {}).values(), *(inspect.reserved() or {}).values()]
    assert held and all(tasks == [] for tasks in held), f"workers hold {held}"
    wait_completed([order_id], timeout=60)


def test_out_of_stock_is_not_retried_and_completes_once_after_restock_and_replay(
    stack: Stack,
) -> None:
    stack.sandbox.set_stock({"SKU-019": 0})
    lines = [{"sku": "SKU-019", "qty": 2, "unit_price": "7.00"}]
    order_id = post_one(stack, lines=lines)

    failure = wait_failed(order_id)
    assert (failure["error_kind"], failure["http_status"], failure["error_code"]) == (
        "permanent",
        409,
        "out_of_stock",
    )
    assert failure["attempts"] == 1
    assert view(stack, order_id)["status"] == "failed"
    assert not events(stack, order_id, "step.retry_scheduled")
    assert view(stack, order_id)["steps"]["fulfillment"]["status"] == "pending"
    support.wait_for(
        lambda: bool(events(stack, order_id, "step.dead_lettered")),
        timeout=20,
        what="the rejected message to reach the failure queue and be recorded",
    )

    listed = hub("failures", "list", "--step", "inventory", "--code", "out_of_stock")
    assert str(failure["id"]) in listed.stdout, listed.stdout + listed.stderr
    stack.sandbox.set_stock({"SKU-019": 100})
    replayed = hub("replay", str(failure["id"]), "--operator", "ops-alice", "--reason", "restocked")
    assert replayed.returncode == 0, replayed.stderr

    wait_completed([order_id], timeout=60)
    assert_exactly_once(stack, [order_id])
    [replay_event] = events(stack, order_id, "failure.replayed")
    assert replay_event["detail"]["operator"] == "ops-alice"
    assert replay_event["detail"]["reason"] == "restocked"


def test_replay_twice_or_concurrently_applies_the_step_once_and_dry_run_changes_nothing(
    stack: Stack,
) -> None:
    stack.sandbox.set_faults("warehouse", fail_next=1, status=422)
    order_id = post_one(stack)
    failure = wait_failed(order_id)
    assert failure["step"] == "fulfillment"

    dry = hub("replay", "--step", "fulfillment", "--dry-run")
    assert dry.returncode == 0 and str(failure["id"]) in dry.stdout
    assert open_failures(order_id), "a dry run replays nothing"
    assert view(stack, order_id)["status"] == "failed"

    racing = [
        subprocess.Popen(
            [sys.executable, "-m", "hub", "replay", str(failure["id"])],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=60)[0] for p in racing]
    again = hub("replay", str(failure["id"]))

    summary = " ".join(outputs)
    assert summary.count("replayed 1,") == 1, outputs
    assert summary.count("skipped ") >= 1, outputs  # the loser saw it replayed already
    assert "already replayed by" in again.stdout
    wait_completed([order_id], timeout=60)
    assert_exactly_once(stack, [order_id])
    assert len(events(stack, order_id, "failure.replayed")) == 1
    inventory_runs = events(stack, order_id, "step.started")
    assert [e["step"] for e in inventory_runs].count("inventory") == 1, "earlier step not rerun"


def test_a_message_that_keeps_killing_its_worker_is_dead_lettered_and_others_complete(
    stack: Stack,
) -> None:
    stack.sandbox.set_faults("erp", latency_ms=6000)  # so each delivery is caught mid-step
    poison = post_one(stack)
    kills, seen = 0, 0
    while not open_failures(poison) and kills < 12:

        def delivered_again(seen: int = seen) -> bool:
            return len(events(stack, poison, "step.started")) > seen or bool(open_failures(poison))

        support.wait_for(delivered_again, timeout=30, what="the poison message delivered again")
        seen = len(events(stack, poison, "step.started"))
        if open_failures(poison):
            break
        for name in ("worker1", "worker2"):
            child = stack.child(name)
            assert isinstance(child, Child)
            kill_worker(stack, child)
        kills += 1
    stack.sandbox.clear_faults()

    failure = wait_failed(poison, timeout=60)
    assert failure["error_kind"] == "poison"
    assert "delivery" in failure["message"]
    assert view(stack, poison)["status"] == "failed"
    others = post_orders(stack, 5)
    wait_completed(others, timeout=60)


def kill_worker(stack: Stack, worker: Child) -> None:
    """SIGKILL a worker (on the threads pool, the step dies with the whole process, as it
    would on a crash), then start it again."""
    os.killpg(worker.popen.pid, signal.SIGKILL)
    worker.popen.wait(10)
    stack.supervisor.children.remove(worker)
    stack.start_worker(worker.name)
