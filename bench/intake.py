"""Figure e: intake capacity, orders accepted per second from closed-loop senders.

Each of the senders posts its next order as soon as the previous one is answered. The hub's
``hub api`` (``HUB_API_PROCESSES`` uvicorn processes) against a bare endpoint served the same
way that only parses the body with the hub's ``OrderIn`` and answers 202
(``bench.baseline_api --bare-intake``), same senders, same run.

The workers are stopped first, so both servers have the machine to themselves (and the figure
runs last): the accepted orders wait in their queues and are purged at the end of the bench.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench import cpu, state
from bench.auth import sender_headers
from bench.latency import WARMUP, load, start_baseline, summary
from bench.stack import Stack


@dataclass(frozen=True)
class IntakeParams:
    requests: int
    clients: int = 8


def _costed(stack: Stack, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The run's summary with the CPU each part of the stack spent per request."""
    before = cpu.snapshot(stack)
    result = run()
    result["cpu_ms_per_request"] = cpu.per_order(
        before, cpu.snapshot(stack), max(1, result["requests"])
    )
    return result


def measure(stack: Stack, params: IntakeParams, *, baseline_port: int) -> dict[str, Any]:
    # Workers first: steps still returning from the figure before must not hold locks on the
    # tables being truncated.
    for name in stack.worker_names:
        stack.stop_child(stack.child(name))
    state.truncate_all()
    state.purge_queues()
    stack.sandbox.clear_faults()
    bare_url = start_baseline(stack, baseline_port, "--bare-intake", name="bare-intake")
    try:
        sent = {"count": params.requests, "clients": params.clients}
        hub = _costed(
            stack, lambda: summary(load(f"{stack.api_url}/orders", sender_headers(), **sent))
        )
        bare = _costed(stack, lambda: summary(load(f"{bare_url}/orders", {}, **sent)))
    finally:
        stack.stop_child(stack.child("bare-intake"))
        state.purge_queues()
    # Accepted per second: only the 2xx answers count.
    for result in (hub, bare):
        result["accepted_per_s"] = round(
            result["requests_per_s"] * result["accepted"] / max(1, result["requests"]), 1
        )
    ratio = hub["accepted_per_s"] / bare["accepted_per_s"] if bare["accepted_per_s"] else 0.0
    return {
        "params": {
            "requests": params.requests,
            "clients": params.clients,
            "warmup_requests": WARMUP,
            "api_processes": stack.settings.api_processes,
            "bare": "OrderIn.model_validate_json of the body, then 202; uvicorn as hub api",
            "workers": "stopped",
        },
        "hub": hub,
        "bare": bare,
        "ratio": round(ratio, 3),
    }
