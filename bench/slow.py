"""Figure g: every system answering in 250 ms, against the same batch answered at once.

Run on workers as ``make worker`` starts them (the threads pool, its default 32 threads), one
worker as a new user runs it: the hub's throughput must not be ``processes / (3 x latency)``.
With 32 calls in flight a 250 ms system allows 128 calls/s, 43 orders/s through three systems;
the batch answered at once is limited by the worker's CPU instead. The worker's resident memory
(main process and any pool children) is sampled through the slow batch.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from bench import throughput
from bench.memory import MB, worker_rss
from bench.stack import Stack
from hub.demo.processes import Child


@dataclass(frozen=True)
class SlowParams:
    orders: int
    clients: int
    latency_ms: int = 250
    workers: int = 1


class RssSampler:
    """The workers' RSS every half second in the background; the most seen."""

    def __init__(self, workers: list[Child]) -> None:
        self._workers = workers
        self.most = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss", daemon=True)

    def _run(self) -> None:
        while True:
            self.most = max(self.most, worker_rss(self._workers))
            if self._stop.wait(0.5):
                return

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(5)


def _batch(stack: Stack, params: SlowParams) -> dict[str, Any]:
    return throughput.hub_run(
        stack,
        throughput.ThroughputParams(
            orders=params.orders,
            clients=params.clients,
            workers=params.workers,
            concurrency=0,  # not used by the hub's run
            timeout=600,
        ),
    )


def measure(stack: Stack, params: SlowParams) -> dict[str, Any]:
    with stack.other_workers(workers=params.workers) as workers:
        stack.sandbox.clear_faults()
        at_once = _batch(stack, params)
        for system in stack.sandbox.urls:
            stack.sandbox.set_faults(system, latency_ms=params.latency_ms)
        try:
            with RssSampler(workers) as rss:
                slow = _batch(stack, params)
        finally:
            stack.sandbox.clear_faults()
    ratio = slow["per_second"] / at_once["per_second"] if at_once["per_second"] else 0.0
    return {
        "params": {
            "orders": params.orders,
            "clients": params.clients,
            "latency_ms": params.latency_ms,
            "workers": params.workers,
            "worker": "hub worker defaults (threads pool, 32 threads)",
        },
        "at_once": at_once,
        "slow": slow,
        "worker_rss_max_mb": round(rss.most / MB, 1),
        "ratio": round(ratio, 3),
    }
