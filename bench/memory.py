"""Figure d: worker memory while thousands of steps wait for their retry, against idle.

The ERP answers 503 with a Retry-After, so every inventory step is put off (by its retry or by
the breaker, whose rest is set to the same length for this figure); the delays are held by
RabbitMQ (``celery_delayed_*``), not by the workers, whose resident memory should stay where it
was when idle. The Retry-After must outlast posting the orders and the sampling, or the first
parked steps come back while memory is being measured.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

import psutil

from bench import records, state
from bench.auth import sender_headers
from bench.load import new_run_id, order_payload, post_order, run_clients
from bench.stack import Stack
from hub.db import audit
from hub.demo.processes import Child

MB = 1024 * 1024


@dataclass(frozen=True)
class MemoryParams:
    orders: int
    retry_after: int
    clients: int = 16
    warmup_orders: int = 100
    sample_seconds: float = 15
    settle_timeout: float = 180


def worker_rss(workers: list[Child]) -> int:
    """Resident bytes of every worker: its main process and its pool children."""
    total = 0
    for child in workers:
        try:
            main = psutil.Process(child.popen.pid)
            for process in [main, *main.children(recursive=True)]:
                total += process.memory_info().rss
        except psutil.Error:
            continue
    return total


def _samples(workers: list[Child], seconds: float) -> list[int]:
    values = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        values.append(worker_rss(workers))
        time.sleep(0.5)
    return values


def _let_parked_steps_return(stack: Stack, *, cooldown: float, timeout: float) -> None:
    """End the figure only once every parked step has come back, as a harmless no-op.

    Left parked, they would land in the queues of whatever runs next (the next bench run, in
    front of its orders). The orders are deleted first, so each returning step finds no order
    and is dead-lettered at once; the held-back steps all return when the breaker's rest ends
    (plus up to 2 s of jitter), the retried ones after their Retry-After, both counted from
    when the breaker opened.
    """
    opened = records.first_event_at(audit.BREAKER_OPENED)
    state.truncate_all()
    stack.sandbox.clear_faults()
    if opened is not None:
        time.sleep(max(0.0, opened.timestamp() + cooldown + 3 - time.time()))
    deadline = time.monotonic() + timeout
    queue = f"{stack.settings.queue_prefix}.inventory"
    while time.monotonic() < deadline and state.queue_depths()[queue] > 0:
        time.sleep(0.5)


def measure(stack: Stack, params: MemoryParams) -> dict[str, Any]:
    state.truncate_all()
    state.purge_queues()
    stack.sandbox.clear_faults()
    headers = sender_headers()
    # The breaker rests as long as the ERP asked (Retry-After), so the steps it holds back
    # wait as long as the ones it retries: all of them parked, none cycling every few seconds.
    stack.restart_workers(HUB_BREAKER__COOLDOWN=str(params.retry_after))
    workers = [stack.child(name) for name in stack.worker_names]
    # Idle means warmed up: every code path of a normal order has run once in each process.
    run = new_run_id()
    url = f"{stack.api_url}/orders"
    run_clients(
        lambda n: post_order(url, order_payload(n, run=f"warm{run}"), headers=headers),
        range(params.warmup_orders),
        clients=params.clients,
    )
    deadline = time.monotonic() + params.settle_timeout
    while records.status_counts()["completed"] < params.warmup_orders:
        if time.monotonic() > deadline:
            raise TimeoutError("the warm-up orders did not complete")
        time.sleep(0.5)
    idle = _samples(workers, 3)
    stack.sandbox.set_faults("erp", down=True, retry_after=params.retry_after)
    intake = run_clients(
        lambda n: post_order(url, order_payload(n, run=run), headers=headers),
        range(params.orders),
        clients=params.clients,
    )
    # Settled: the workers have taken every order's first message; what is left is parked.
    inventory_queue = f"{stack.settings.queue_prefix}.inventory"
    deadline = time.monotonic() + params.settle_timeout
    while time.monotonic() < deadline:
        if state.queue_depths()[inventory_queue] < max(10, params.orders // 100):
            break
        time.sleep(0.5)
    parked = state.delayed_depth()
    during = _samples(workers, params.sample_seconds)
    counts = records.status_counts()
    events = records.event_counts()
    _let_parked_steps_return(stack, cooldown=params.retry_after, timeout=params.settle_timeout)
    idle_mb = statistics.median(idle) / MB
    during_mb = statistics.median(during) / MB
    return {
        "params": {
            "orders": params.orders,
            "erp_fault": f"503 with Retry-After: {params.retry_after}",
            "breaker_cooldown_s": params.retry_after,
            "workers": len(workers),
            "processes_per_worker": stack.concurrency,
            "sample_seconds": params.sample_seconds,
            "warmup_orders": params.warmup_orders,
        },
        "orders_accepted": len(intake.accepted),
        "orders_waiting": len(intake.accepted) + params.warmup_orders - counts["completed"],
        "parked_in_rabbitmq": parked,
        "retries_scheduled": events["step.retry_scheduled"],
        "deferred_by_breaker": events["step.deferred"],
        "idle_rss_mb": round(idle_mb, 1),
        "backlog_rss_mb": round(during_mb, 1),
        "backlog_rss_max_mb": round(max(during) / MB, 1),
        "ratio": round(during_mb / idle_mb, 3) if idle_mb else 0.0,
    }
