"""Figure j: completed orders per second through a real Tryton, against Tryton's own rate.

Both run on one local Tryton (a fresh copy of the cached template, ``make tryton``):

- the baseline is Tryton alone, one order at a time: the same calls the hub makes (the
  adapter's workflow: sale, quote, confirm, assign, pick, pack, done, invoice post) from one
  client, with no hub, broker or database of the hub's in between;
- the hub's figure is a batch posted to the API and run by the hub's default workers (two
  ``hub worker`` processes, threads pool, default concurrency), with the per-system limits a
  Tryton needs (``TRYTON_LIMITS``: an invoice's post is serialised by Tryton itself), timed
  from the first post to the last completion.

The hub's stack is its own (database hub_bench_tryton, queue prefix hubbenchj, ports
18540-18544, Tryton on 18549), beside the bench's sandbox stack.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from adapters.tryton.rpc import TrytonConnection, TrytonRpc
from adapters.tryton.workflow import TrytonWorkflow
from bench import cpu, records, state
from bench.auth import sender_headers
from bench.env import StackPlace
from bench.load import new_run_id, order_payload, post_order, run_clients
from bench.stack import Stack
from hub.core.ports.downstream import Line, Order
from sandbox.tryton.server import HUB_PASSWORD, HUB_USER, TRYTON_LIMITS, local_tryton

PLACE = StackPlace(database="hub_bench_tryton", queue_prefix="hubbenchj", port_base=18540)
TRYTON_PORT = 18549
TRYTON_DATABASE = "hub_tryton_bench"


@dataclass(frozen=True)
class TrytonParams:
    orders: int = 30
    sequential_orders: int = 10
    clients: int = 8
    workers: int = 2
    timeout: float = 900


def as_order(payload: dict[str, Any]) -> Order:
    """The order the hub's steps would hand the adapter for this payload."""
    return Order(
        id=uuid.uuid4(),
        customer=payload["customer"],
        ship_to=payload["ship_to"],
        currency=payload["currency"],
        lines=tuple(
            Line(sku=line["sku"], qty=line["qty"], unit_price=line["unit_price"])
            for line in payload["lines"]
        ),
    )


def sequential(url: str, database: str, params: TrytonParams) -> dict[str, Any]:
    """Tryton's own rate: the hub's calls for one order after another, from one client."""
    workflow = TrytonWorkflow(
        TrytonRpc(
            TrytonConnection(url=url, database=database, user=HUB_USER, password=HUB_PASSWORD)
        )
    )
    run = new_run_id()
    warm = as_order(order_payload(0, run=run))  # the login and Tryton's caches, not counted
    workflow.reserve(warm)
    workflow.ship(warm)
    workflow.invoice(warm)
    started = time.monotonic()
    for n in range(1, params.sequential_orders + 1):
        order = as_order(order_payload(n, run=run))
        workflow.reserve(order)
        workflow.ship(order)
        workflow.invoice(order)
    seconds = time.monotonic() - started
    return {
        "orders": params.sequential_orders,
        "seconds": round(seconds, 2),
        "per_second": round(params.sequential_orders / seconds, 3),
    }


def hub_run(stack: Stack, params: TrytonParams) -> dict[str, Any]:
    """The batch through the API, timed until the last order's invoice."""
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
        time.sleep(0.5)
    counts = records.status_counts()
    last = records.last_completion()
    seconds = (last.timestamp() if last else time.time()) - started
    return {
        "orders": params.orders,
        "accepted": accepted,
        "completed": counts["completed"],
        "failed": counts["failed"],
        "seconds": round(seconds, 2),
        "per_second": round(counts["completed"] / seconds, 3) if seconds > 0 else 0.0,
        "cpu_ms_per_order": cpu.per_order(cpu_before, cpu.snapshot(stack), max(1, accepted)),
        "deferred_steps": records.event_counts().get("step.deferred", 0),
        "retried_steps": records.event_counts().get("step.retry_scheduled", 0),
    }


def measure(log_dir: Path, params: TrytonParams) -> dict[str, Any]:
    with local_tryton(TRYTON_DATABASE, TRYTON_PORT) as tryton:
        baseline = sequential(tryton.url, tryton.database, params)
        PLACE.apply(**tryton.hub_env())
        from hub.settings import get_settings

        state.fresh_database()
        state.purge_queues()
        # The default worker: threads pool, its default concurrency.
        stack = Stack(get_settings(), log_dir, workers=params.workers)
        try:
            stack.start()
            hub = hub_run(stack, params)
        finally:
            stack.stop()
            state.purge_queues()
    ratio = hub["per_second"] / baseline["per_second"] if baseline["per_second"] else None
    return {
        "params": {**asdict(params), "limits": dict(TRYTON_LIMITS), "worker": "default"},
        "hub": hub,
        "sequential": baseline,
        "ratio": round(ratio, 3) if ratio is not None else None,
    }
