"""Figure f: the ERP failing half its calls, against a healthy ERP, same batch, same run.

The ERP fails the first call of each order's reservation (a 503 with a proxy's HTML page and
``Retry-After: <1 s ahead, as an HTTP date>``) and takes its repeat. The breaker must tell
this from an outage and leave the ERP its full rate: the batch should drain nearly as fast as
with a healthy ERP, each order paying one retry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench import records, throughput
from bench.stack import Stack
from hub.db import audit

FAULT: dict[str, Any] = {
    "first_call_fails": True,
    "status": 503,
    "body": "html",
    "retry_after": 1,
    "retry_after_date": True,
}


@dataclass(frozen=True)
class FlakyParams:
    orders: int
    clients: int
    workers: int
    concurrency: int


def _batch(stack: Stack, params: FlakyParams) -> dict[str, Any]:
    calls_before = int(stack.sandbox.ledger("erp")["calls"])
    run = throughput.hub_run(
        stack,
        throughput.ThroughputParams(
            orders=params.orders,
            clients=params.clients,
            workers=params.workers,
            concurrency=params.concurrency,
            timeout=300,
        ),
    )
    events = records.event_counts()
    return {
        **run,
        "erp_calls": int(stack.sandbox.ledger("erp")["calls"]) - calls_before,
        "retries_scheduled": events[audit.RETRY_SCHEDULED],
        "deferred_by_breaker": events[audit.STEP_DEFERRED],
        "breaker_opened": events[audit.BREAKER_OPENED],
    }


def measure(stack: Stack, params: FlakyParams) -> dict[str, Any]:
    stack.sandbox.clear_faults()
    healthy = _batch(stack, params)
    stack.sandbox.set_faults("erp", **FAULT)
    try:
        flaky = _batch(stack, params)
    finally:
        stack.sandbox.clear_faults()
    ratio = flaky["per_second"] / healthy["per_second"] if healthy["per_second"] else 0.0
    return {
        "params": {
            "orders": params.orders,
            "clients": params.clients,
            "erp_fault": FAULT,
            "breaker": stack.settings.breaker.model_dump(),
        },
        "healthy": healthy,
        "flaky": flaky,
        "ratio": round(ratio, 3),
    }
