"""The demo's third act: orders that change. One is cancelled while its shipment is in flight
(its reservation released and shipment cancelled, each once); one has an address the warehouse
refuses for good, corrected by the operator and replayed."""

from __future__ import annotations

import time
import uuid
from typing import Any

import requests
from rich.table import Table

from hub import bootstrap
from hub.db.engine import unit_of_work
from hub.db.models import StepOutcome
from hub.demo.context import DemoRun, post_order, sample_order
from hub.demo.failure_scene import SceneTimeout, _status, _wait, wait_dead_lettered
from hub.demo.sandboxes import Sandboxes
from hub.services.amendments import amend_order
from hub.services.outbox import publish_row_now

UNDELIVERABLE = "00013"  # the sandbox warehouse refuses postal codes starting 000


def _step_status(order_id: str, step: str) -> str | None:
    with unit_of_work() as session:
        row = session.get(StepOutcome, (uuid.UUID(order_id), step))
        return row.status if row else None


def _wait_step(order_id: str, step: str, wanted: str, *, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while _step_status(order_id, step) != wanted:
        if time.monotonic() > deadline:
            raise SceneTimeout(order_id, f"{step} {wanted}", _status(order_id), timeout)
        time.sleep(0.2)


def _post(run: DemoRun, order: dict[str, Any]) -> str:
    return post_order(None, run, order)


def cancel_scene(run: DemoRun) -> bool:
    """Cancel while the shipment is in flight: it finishes, then both done steps are undone.
    True when the ledgers show each effect undone exactly once."""
    console = run.console
    sandboxes = Sandboxes.from_settings(run.settings)
    console.rule("one order cancelled by its sender mid-way")
    sandboxes.set_faults("warehouse", latency_ms=1500)  # a slow warehouse: the cancel lands
    try:
        order_id = _post(run, sample_order(run, 9997))
        _wait_step(order_id, "fulfillment", "running")
        reply = requests.post(
            f"{run.api_url}/orders/{order_id}/cancel",
            json={"reason": "customer changed their mind"},
            headers=run.auth_headers,
            timeout=10,
        )
        reply.raise_for_status()
        console.print(
            f"POST /orders/{order_id}/cancel -> {reply.status_code} {reply.json()['status']} "
            "(the shipment in flight finishes first)"
        )
        _wait(order_id, "cancelled")
    finally:
        sandboxes.clear_faults()
    effects = {system: sandboxes.ledger(system)["effects"] for system in ("erp", "warehouse")}
    table = Table(title=f"order {order_id}: what the systems applied")
    for column in ("system", "effect", "undone by", "times undone"):
        table.add_column(column)
    ok = True
    for system, step in (("erp", "inventory"), ("warehouse", "fulfillment")):
        done = [e for e in effects[system] if e["idempotency_key"] == f"{order_id}:{step}"]
        undone = [
            e for e in effects[system] if e["idempotency_key"] == f"{order_id}:{step}:compensate"
        ]
        ok = ok and len(done) == 1 and len(undone) == 1
        table.add_row(
            system,
            done[0]["id"] if done else "-",
            undone[0]["id"] if undone else "-",
            str(len(undone)),
        )
    console.print(table)
    colour = "green" if ok else "red"
    console.print(f"[{colour}]cancelled: order {order_id}, each effect undone once[/{colour}]")
    return ok


def correction_scene(run: DemoRun) -> list[str]:
    """An address refused for good -> the operator corrects the postal code -> replayed."""
    console = run.console
    console.rule("one order with an address the warehouse refuses")
    order = sample_order(run, 9998)
    order["ship_to"] = {**order["ship_to"], "postal_code": UNDELIVERABLE}  # type: ignore[dict-item]
    order_id = _post(run, order)
    _wait(order_id, "failed")
    wait_dead_lettered(run, order_id)
    with unit_of_work() as session:
        done = amend_order(
            session,
            uuid.UUID(order_id),
            {"ship_to": {"postal_code": "69002"}},
            by="demo",
            reason="customer gave the right postal code",
            replay=True,
        )
    for name, before, after in done.changes:
        console.print(f"hub orders edit {order_id} --set {name}={after}   (was {before})")
    if done.outbox_id is not None:
        publish_row_now(bootstrap.chain_publisher(run.settings), done.outbox_id)
    _wait(order_id, "completed")
    console.print(
        f"[green]corrected and replayed: order {order_id} completed from the "
        f"{done.replayed_step} step[/green]"
    )
    return [order_id]
