"""The demo's second act: an order fails (out of stock), is listed, restocked and replayed."""

from __future__ import annotations

import time
import uuid

import requests

from hub import bootstrap
from hub.db.engine import unit_of_work
from hub.db.models import Order
from hub.demo.context import DemoRun, sample_order
from hub.demo.sandboxes import Sandboxes
from hub.entrypoints.cli.failures import failures_table
from hub.services.outbox import publish_row_now
from hub.services.replay import FailureFilter, find_failures, replay_one, resolve_many

SCARCE_SKU = "SKU-020"


def _status(order_id: str) -> str:
    with unit_of_work() as session:
        order = session.get(Order, uuid.UUID(order_id))
        return order.status if order else "missing"


def _wait(order_id: str, wanted: str, *, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while _status(order_id) != wanted:
        if time.monotonic() > deadline:
            raise RuntimeError(f"order {order_id} did not become {wanted} in {timeout}s")
        time.sleep(0.3)


def failure_scene(run: DemoRun) -> list[str]:
    """Out of stock -> failed and listed -> restock -> dry run -> replay -> completed."""

    console = run.console
    sandboxes = Sandboxes.from_settings(run.settings)
    sandboxes.set_stock({SCARCE_SKU: 0})
    console.rule("one order the ERP cannot serve")
    reply = requests.post(
        f"{run.api_url}/orders",
        json=sample_order(run, 9999, sku=SCARCE_SKU),
        headers=run.auth_headers,
        timeout=10,
    )
    reply.raise_for_status()
    order_id = str(reply.json()["order_id"])
    _wait(order_id, "failed")
    only_this = FailureFilter(step="inventory", code="out_of_stock")
    with unit_of_work() as session:
        failures = [f for f in find_failures(session, only_this) if str(f.order_id) == order_id]
        console.print(failures_table(list(failures), title="hub failures list --code out_of_stock"))
    console.print(f"restocking {SCARCE_SKU} in the ERP, then: hub replay <id> (dry run first)")
    sandboxes.set_stock({SCARCE_SKU: 500})
    console.print(failures_table(list(failures), title="hub replay --dry-run: would replay 1"))
    publisher = bootstrap.chain_publisher(run.settings)

    def publish(resolution: object) -> None:
        outbox_id = getattr(resolution, "outbox_id", None)
        if outbox_id is not None:
            publish_row_now(publisher, outbox_id)

    resolve_many(
        [f.id for f in failures],
        replay_one,
        operator="demo",
        reason=f"{SCARCE_SKU} restocked",
        on_each=publish,
    )
    _wait(order_id, "completed")
    console.print(f"[green]replayed: order {order_id} completed from the inventory step[/green]")
    return [order_id]
