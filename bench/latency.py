"""Figure b: intake latency while the ERP is slow, then down; the hub against a synchronous
intake that calls the ERP before answering (``bench.baseline_api``), same load, same run.

The load is open: requests are due at a steady rate, whatever the server does, and each one's
latency runs from when it was due. A closed loop of N clients would measure how many requests
a server finishes a second, not how long a sender waits.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from bench import state
from bench.auth import sender_headers
from bench.load import (
    LoadResult,
    new_run_id,
    order_payload,
    percentile,
    post_order,
    run_clients,
    run_open_loop,
)
from bench.stack import Stack
from hub.demo.processes import http_ok

WARMUP = 20


@dataclass(frozen=True)
class LatencyParams:
    requests: int
    rate: float  # requests per second, the same for the hub and the baseline
    clients: int  # concurrent senders at most
    erp_latency_ms: int = 500


def start_baseline(stack: Stack, port: int, *args: str, name: str = "baseline") -> str:
    """Serve ``bench.baseline_api`` (with these arguments) on ``port``; its URL."""
    child = stack.supervisor.start(
        name, [sys.executable, "-m", "bench.baseline_api", "--port", str(port), *args]
    )
    url = f"http://127.0.0.1:{port}"
    stack.supervisor.wait_until(child, http_ok(f"{url}/healthz"), timeout=60)
    return url


def load(
    url: str, headers: dict[str, str], *, count: int, clients: int, rate: float | None = None
) -> LoadResult:
    """``count`` orders after a warm-up: on a schedule of ``rate`` a second (open loop), or
    with ``rate`` None each sender posting its next as soon as its last is answered (closed)."""
    run = new_run_id()

    def send(n: int) -> Any:
        return post_order(url, order_payload(n, run=run), headers=headers)

    run_clients(send, range(-WARMUP, 0), clients=clients)  # connections, caches
    if rate is None:
        return run_clients(send, range(count), clients=clients)
    return run_open_loop(send, count, rate=rate, clients=clients)


def _sent(params: LatencyParams) -> dict[str, Any]:
    return {"count": params.requests, "clients": params.clients, "rate": params.rate}


def summary(result: LoadResult) -> dict[str, Any]:
    latencies = result.latencies()
    ok = sum(1 for s in result.samples if 200 <= s.status < 300)
    return {
        "requests": len(latencies),
        "p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "max_ms": round(max(latencies) * 1000, 1),
        "accepted": ok,
        "accepted_pct": round(100 * ok / len(latencies), 1),
        "requests_per_s": round(len(latencies) / result.wall_seconds, 1),
    }


def _ratio(hub: float, baseline: float) -> float:
    return round(hub / baseline, 4) if baseline else 0.0


def measure(stack: Stack, params: LatencyParams, *, baseline_port: int) -> dict[str, Any]:
    state.truncate_all()
    state.purge_queues()
    headers = sender_headers()
    baseline_url = start_baseline(stack, baseline_port)
    scenarios: dict[str, dict[str, Any]] = {}
    faults: dict[str, dict[str, Any]] = {
        "erp_slow": {"latency_ms": params.erp_latency_ms},
        "erp_down": {"down": True},
    }
    try:
        for name, fault in faults.items():
            stack.sandbox.clear_faults()
            stack.sandbox.set_faults("erp", **fault)
            hub = summary(load(f"{stack.api_url}/orders", headers, **_sent(params)))
            baseline = summary(load(f"{baseline_url}/orders", {}, **_sent(params)))
            scenarios[name] = {
                "fault": fault,
                "hub": hub,
                "baseline": baseline,
                "p50_ratio": _ratio(hub["p50_ms"], baseline["p50_ms"]),
                "p99_ratio": _ratio(hub["p99_ms"], baseline["p99_ms"]),
            }
    finally:
        stack.sandbox.clear_faults()
        stack.stop_child(stack.child("baseline"))
    return {
        "params": {
            "requests": params.requests,
            "rate_per_s": params.rate,
            "clients": params.clients,
            "warmup_requests": WARMUP,
            "erp_latency_ms": params.erp_latency_ms,
        },
        **scenarios,
    }
