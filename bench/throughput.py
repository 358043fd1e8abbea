"""Figure a: completed orders per second, the hub against a bare Celery chain, same run."""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from bench import cpu, records, state
from bench.auth import sender_headers
from bench.bare import (
    BARE_PREFIX,
    create_bare_app,
    declare_and_purge,
    drained,
    node_name,
    publish_chain,
)
from bench.load import new_run_id, order_payload, post_order, run_clients
from bench.stack import Stack
from hub.demo.processes import Child

# How often the bare run asks whether its chains have drained (the end is known to this much).
POLL_EVERY = 0.05


@dataclass(frozen=True)
class ThroughputParams:
    orders: int
    clients: int
    workers: int
    concurrency: int
    timeout: float = 900


def hub_run(stack: Stack, params: ThroughputParams) -> dict[str, Any]:
    """Post the batch through the API and time it until the last order's invoice."""
    state.truncate_all()
    state.purge_queues()
    headers = sender_headers()
    run = new_run_id()
    url = f"{stack.api_url}/orders"
    cpu_before = cpu.snapshot(stack)
    started = time.time()
    intake = run_clients(
        lambda n: post_order(url, order_payload(n, run=run), headers=headers),
        range(params.orders),
        clients=params.clients,
    )
    accepted = len(intake.accepted)
    deadline = time.monotonic() + params.timeout
    while time.monotonic() < deadline:
        counts = records.status_counts()
        if counts["completed"] + counts["failed"] >= accepted:
            break
        time.sleep(0.25)
    counts = records.status_counts()
    last = records.last_completion()
    seconds = (last.timestamp() if last else time.time()) - started
    cpu_after = cpu.snapshot(stack)
    return {
        "orders": params.orders,
        "accepted": accepted,
        "completed": counts["completed"],
        "failed": counts["failed"],
        "seconds": round(seconds, 2),
        "intake_seconds": round(intake.wall_seconds, 2),
        "per_second": round(counts["completed"] / seconds, 1) if seconds > 0 else 0.0,
        "cpu_ms_per_order": cpu.per_order(cpu_before, cpu_after, max(1, accepted)),
    }


def start_bare_workers(stack: Stack, params: ThroughputParams) -> list[Child]:
    children = []
    for n in range(1, params.workers + 1):
        child = stack.supervisor.start(
            f"{BARE_PREFIX}-{n}",
            [
                sys.executable,
                "-m",
                "bench.bare",
                "--concurrency",
                str(params.concurrency),
                "--name",
                f"{BARE_PREFIX}-{n}",
            ],
        )
        children.append(child)
    for child in children:
        stack.supervisor.wait_for_log(child, "ready.", timeout=90)
    return children


def bare_run(stack: Stack, params: ThroughputParams) -> dict[str, Any]:
    """Publish the same number of three-task chains and time them until they have drained.

    Polled every 50 ms (queue depths, then the workers' active and reserved tasks): no task
    events, which the hub does not send either.
    """
    app = create_bare_app(stack.settings)
    declare_and_purge(app)
    workers = start_bare_workers(stack, params)
    nodes = [node_name(child.name) for child in workers]
    try:
        cpu_before = cpu.snapshot(stack)
        started = time.time()
        with ThreadPoolExecutor(params.clients) as pool:
            list(pool.map(lambda n: publish_chain(app, f"bare-{n}"), range(params.orders)))
        deadline = time.monotonic() + params.timeout
        done = False
        while not done and time.monotonic() < deadline:
            time.sleep(POLL_EVERY)
            done = drained(app, nodes)
        seconds = time.time() - started
        return {
            "orders": params.orders,
            "completed": params.orders if done else 0,
            "seconds": round(seconds, 2),
            "per_second": round(params.orders / seconds, 1) if done and seconds > 0 else 0.0,
            "cpu_ms_per_order": cpu.per_order(cpu_before, cpu.snapshot(stack), params.orders),
            "counted_by": f"queues empty and no task active or reserved, polled every "
            f"{int(POLL_EVERY * 1000)} ms",
        }
    finally:
        for child in workers:
            stack.stop_child(child)


def measure(stack: Stack, params: ThroughputParams) -> dict[str, Any]:
    hub = hub_run(stack, params)
    bare = bare_run(stack, params)
    ratio = hub["per_second"] / bare["per_second"] if bare["per_second"] else 0.0
    return {
        "params": {
            "orders": params.orders,
            "clients": params.clients,
            "workers": params.workers,
            "concurrency": params.concurrency,
            "sandbox_latency_ms": 0,
        },
        "hub": hub,
        "bare": bare,
        "ratio": round(ratio, 3),
    }
