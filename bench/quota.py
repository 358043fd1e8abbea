"""Figure h: an ERP that allows 4 calls at once, and a hub told so, on two workers.

The sandbox ERP answers in 250 ms and refuses (429) a fifth call in flight; both workers run
with ``HUB_ERP_MAX_IN_FLIGHT=4`` (the threads pool, 32 threads each). The ERP's own ledger says
the most calls it saw at once (must be <= 4) and the 429s it answered (target 0: the limit is
kept by the hub, not found by the ERP's refusals). The batch cannot drain faster than the ERP
serves it, ``orders x latency / 4``: the drain time is set against that bound.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench import records, throughput
from bench.stack import Stack
from hub.db import audit

LIMIT = 4


@dataclass(frozen=True)
class QuotaParams:
    orders: int
    clients: int
    latency_ms: int = 250
    workers: int = 2


def measure(stack: Stack, params: QuotaParams) -> dict[str, Any]:
    limit = {"HUB_ERP_MAX_IN_FLIGHT": str(LIMIT)}
    with stack.other_workers(workers=params.workers, env=limit):
        stack.sandbox.clear_faults()
        stack.sandbox.set_faults("erp", latency_ms=params.latency_ms, max_in_flight=LIMIT)
        try:
            run = throughput.hub_run(
                stack,
                throughput.ThroughputParams(
                    orders=params.orders,
                    clients=params.clients,
                    workers=params.workers,
                    concurrency=0,  # not used by the hub's run
                    timeout=600,
                ),
            )
            seen = stack.sandbox.ledger("erp")
        finally:
            stack.sandbox.clear_faults()
        events = records.event_counts()
    bound = params.orders * params.latency_ms / 1000 / LIMIT
    return {
        "params": {
            "orders": params.orders,
            "clients": params.clients,
            "erp_latency_ms": params.latency_ms,
            "erp_quota": f"429 beyond {LIMIT} in flight",
            "hub_limit": limit,
            "workers": params.workers,
            "worker": "hub worker defaults (threads pool, 32 threads)",
        },
        "run": run,
        "max_in_flight_seen": int(seen["max_in_flight"]),
        "throttled_429s": int(seen["throttled"]),
        "deferred": events[audit.STEP_DEFERRED],
        "bound_s": round(bound, 2),
        "ratio": round(bound / run["seconds"], 3) if run["seconds"] else 0.0,
    }
