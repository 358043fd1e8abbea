"""The demo's second act: an order fails (out of stock), is listed, restocked and replayed."""

from __future__ import annotations

import time
import uuid

from sqlalchemy import select

from hub import bootstrap
from hub.db import audit
from hub.db.engine import unit_of_work
from hub.db.models import IntegrationEvent, Order
from hub.demo.context import DemoRun, post_order, sample_order
from hub.demo.sandboxes import Sandboxes
from hub.entrypoints.cli.failures import failures_table
from hub.services.outbox import publish_row_now
from hub.services.replay import FailureFilter, find_failures, replay_one, resolve_many


def _status(order_id: str) -> str:
    with unit_of_work() as session:
        order = session.get(Order, uuid.UUID(order_id))
        return order.status if order else "missing"


class SceneTimeout(Exception):
    """The scene's order did not reach a state in time; the demo says so, then its summary."""

    def __init__(self, order_id: str, wanted: str, status: str, timeout: float) -> None:
        super().__init__(
            f"order {order_id} did not become {wanted} in {timeout:.0f}s (it is {status})"
        )
        self.order_ids = [order_id]


def _wait(order_id: str, wanted: str, *, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while (status := _status(order_id)) != wanted:
        if time.monotonic() > deadline:
            raise SceneTimeout(order_id, wanted, status, timeout)
        time.sleep(0.3)


def wait_dead_lettered(run: DemoRun, order_id: str, *, timeout: float = 30) -> None:
    """Wait until the rejected message of a step given up on has been drained from the failure
    queue: replayed before that, the late dead letter would be recorded as a failure anew.
    Trial mode's broker has no failure queue."""
    if run.settings.embedded_broker:
        return
    deadline = time.monotonic() + timeout
    while True:
        with unit_of_work() as session:
            seen = session.scalar(
                select(IntegrationEvent.id).where(
                    IntegrationEvent.order_id == uuid.UUID(order_id),
                    IntegrationEvent.event_type == audit.DEAD_LETTERED,
                )
            )
        if seen is not None:
            return
        if time.monotonic() > deadline:
            raise SceneTimeout(order_id, "dead-lettered", _status(order_id), timeout)
        time.sleep(0.3)


def failure_scene(run: DemoRun) -> list[str]:
    """Out of stock -> failed and listed -> restock -> dry run -> replay -> completed."""

    console = run.console
    set_stock = run.set_stock or Sandboxes.from_settings(run.settings).set_stock
    scarce = run.scarce_sku
    set_stock({scarce: 0})
    console.rule("one order the ERP cannot serve")
    order_id = post_order(None, run, sample_order(run, 9999, sku=scarce))
    _wait(order_id, "failed")
    wait_dead_lettered(run, order_id)
    only_this = FailureFilter(step="inventory", code="out_of_stock")
    with unit_of_work() as session:
        failures = [f for f in find_failures(session, only_this) if str(f.order_id) == order_id]
        console.print(failures_table(list(failures), title="hub failures list --code out_of_stock"))
    console.print(f"restocking {scarce} in the ERP, then: hub replay <id> (dry run first)")
    set_stock({scarce: 500})
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
        reason=f"{scarce} restocked",
        on_each=publish,
    )
    _wait(order_id, "completed")
    console.print(f"[green]replayed: order {order_id} completed from the inventory step[/green]")
    return [order_id]
