"""The API, relay and worker processes log JSON lines that say which order, step, attempt, task."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from hub.settings import get_settings
from tests.e2e.conftest import LOGS, Stack
from tests.e2e.test_flow import post_orders, wait_completed

# Celery writes this one straight to the terminal, not through logging, when a worker stops.
CELERY_SHUTDOWN_NOTICE = re.compile(r"^worker: \w+ shutdown \(MainProcess\)$")


def log_lines(name: str) -> list[dict[str, Any]]:
    """Every line of one process's log, each parsed as JSON (a line that is not fails here)."""
    text = Path(LOGS / f"{name}.log").read_text(errors="replace")
    lines = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip() and not CELERY_SHUTDOWN_NOTICE.match(line):
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:
                raise AssertionError(f"{name}.log line {number} is not JSON: {line!r}") from None
    return lines


def test_each_process_logs_json_lines_carrying_the_order_step_attempt_and_task(
    stack: Stack,
) -> None:
    # Given an order whose ERP call fails once (a retry), then goes through.
    stack.sandbox.set_faults("erp", fail_next=1, status=503)
    [order_id] = post_orders(stack, 1)
    wait_completed([order_id], timeout=90)

    workers = [line for name in ("worker1", "worker2") for line in log_lines(name)]
    ours = [line for line in workers if line.get("order_id") == order_id]
    for step in get_settings().pipeline.steps:
        done = [line for line in ours if line.get("step") == step and "succeeded" in line["event"]]
        assert done, f"no line says {step} succeeded for the order"
        assert all(line["task_id"] and line["attempt"] >= 1 for line in done)
        assert all(line["process"] == "worker" for line in done)
    retried = [
        line for line in ours if line.get("step") == "inventory" and "retry" in line["event"]
    ]
    assert retried and retried[0]["attempt"] == 1, "the retry line carries its attempt"
    received = [line for line in ours if "received" in line["event"]]
    assert {line["step"] for line in received} == set(get_settings().pipeline.steps)
    assert all(line["task_id"] for line in received)

    requests_logged = [
        line
        for line in log_lines("api")
        if line["event"] == "request" and line.get("order_id") == order_id
    ]
    assert [(r["method"], r["path"], r["status"]) for r in requests_logged][:1] == [
        ("POST", "/orders", 202)
    ]

    relay = log_lines("relay")
    assert any(line["event"].startswith("relay running") for line in relay)
    assert {line["process"] for line in relay} == {"relay"}


TASK_ID_IN_TEXT = re.compile(r"\[([0-9a-f-]{36})\]")


def test_steps_running_at_once_on_the_threads_pool_each_log_their_own_context(
    stack: Stack,
) -> None:
    # Given slow systems, so a worker's threads hold many steps in flight at the same moment.
    for system in ("erp", "warehouse", "accounting"):
        stack.sandbox.set_faults(system, latency_ms=300)
    order_ids = post_orders(stack, 40)
    wait_completed(order_ids, timeout=120)

    # Then each "succeeded" line carries the context of its own task, never a neighbour's.
    workers = [line for name in ("worker1", "worker2") for line in log_lines(name)]
    ours = [
        line
        for line in workers
        if line.get("order_id") in order_ids and "succeeded" in line["event"]
    ]
    assert len(ours) == 3 * len(order_ids)
    for line in ours:
        found = TASK_ID_IN_TEXT.search(line["event"])
        assert found and found.group(1) == line["task_id"], line
    assert len({(line["order_id"], line["step"]) for line in ours}) == len(ours)
