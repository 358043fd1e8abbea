"""The pipeline changes under orders in flight: none is stranded, each finishes on its own.

A hub runs three steps; orders are caught at every stage (mid-chain behind a failing
warehouse, queued while the workers are down, one batch whose chain is lost in the broker),
then the workers and the API restart with the notify step on (four steps). Every order
completes: those accepted on three steps on their recorded three (their pipeline and version
unchanged, no e-mail), those accepted after on four (one e-mail to each order's customer, from
the SMTP sandbox's ledger). The orders whose chain was lost are found and re-driven by the
sweeper on the pipeline they recorded. A hub of its own (its package's stack is this one).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import text

from hub.core.registry import Pipeline
from hub.db import audit
from hub.db.engine import get_engine
from hub.demo.stack import HubStack
from hub.services import reconcile
from hub.settings import Settings, get_settings
from tests import support
from tests.factories import order_payload

LOGS = Path(__file__).resolve().parents[2] / "var" / "test-logs" / "pipeline"
THREE = Pipeline(("inventory", "fulfillment", "invoice"))
FOUR = Pipeline((*THREE.steps, "notify"))
# The relay's sweeper acts within seconds; attempts enough that a warehouse failing for the
# whole first half never exhausts an order.
BASE_ENV = {"HUB_SWEEP_AFTER": "3", "HUB_SWEEP_INTERVAL": "1", "HUB_RETRY__MAX_ATTEMPTS": "60"}
NOTIFY_ON = {"HUB_NOTIFY_ENABLED": "true"}


@pytest.fixture(scope="module")
def stack() -> Iterator[HubStack]:
    support.require_services()
    support.fresh_schema()
    support.declare_and_purge_queues()
    four: Settings = get_settings().model_copy(update={"enabled_steps": frozenset({"notify"})})
    hub = HubStack(four, LOGS, env=BASE_ENV)
    if busy := hub.busy():
        pytest.fail(f"something else already answers on {', '.join(busy)}", pytrace=False)
    try:
        yield hub
    finally:
        hub.stop()


def post(stack: HubStack, headers: dict[str, str], n: int, tag: str) -> list[str]:
    ids = []
    for i in range(n):
        customer = {"id": f"C-{tag}{i}", "name": f"Customer {tag}{i}"}
        customer["email"] = f"{tag}{i}@example.com"
        reply = requests.post(
            f"{stack.api_url}/orders",
            json=order_payload(customer=customer),
            headers=headers,
            timeout=10,
        )
        assert reply.status_code == 202, reply.text
        ids.append(str(reply.json()["order_id"]))
    return ids


def rows(sql: str, **params: object) -> list[tuple[object, ...]]:
    with get_engine().connect() as connection:
        return [tuple(row) for row in connection.execute(text(sql), params)]


def succeeded(order_ids: list[str], step: str) -> int:
    [(count,)] = rows(
        "SELECT count(*) FROM step_outcomes WHERE order_id::text = ANY(:ids)"
        " AND step = :step AND status = 'succeeded'",
        ids=order_ids,
        step=step,
    )
    return int(str(count))


def recorded(order_ids: list[str]) -> dict[str, tuple[Any, ...]]:
    """Per order: its recorded pipeline, version, and the steps it has rows for."""
    found = rows(
        "SELECT o.id::text, o.pipeline, o.pipeline_version,"
        " array_agg(s.step ORDER BY s.step) FROM orders o"
        " JOIN step_outcomes s ON s.order_id = o.id WHERE o.id::text = ANY(:ids)"
        " GROUP BY o.id",
        ids=order_ids,
    )
    return {str(i): (tuple(p), str(v), tuple(s)) for i, p, v, s in found}  # type: ignore[call-overload]


def test_orders_in_flight_finish_on_the_pipeline_they_were_accepted_on(stack: HubStack) -> None:
    # The sandbox serves every system the four-step pipeline calls, SMTP included, from the
    # start; the hub's own processes run three steps.
    stack.supervisor.env = {**BASE_ENV, **NOTIFY_ON}
    stack.start_sandbox()
    stack.supervisor.env = dict(BASE_ENV)
    for name in stack.worker_names:
        stack.start_worker(name)
    stack.start_relay()
    stack.start_api()
    headers = support.api_key_headers("pipeline")
    inventory = support.work_queue_names()[0]

    # Given orders mid-chain: reserved, then held at a warehouse that fails every call,
    stack.sandbox.set_faults("warehouse", error_rate=1.0, status=503)
    mid_chain = post(stack, headers, 6, "mid")
    support.wait_for(
        lambda: succeeded(mid_chain, "inventory") == len(mid_chain),
        timeout=120,
        what="the mid-chain orders reserved",
    )
    for name in stack.worker_names:
        stack.stop_child(stack.child(name))
    # orders whose chain the broker lost while no worker ran (the sweeper's to find),
    lost = post(stack, headers, 4, "lost")
    support.wait_for(
        lambda: support.queue_depth(inventory) == len(lost),
        timeout=60,
        what="the lost orders' chains in the inventory queue",
    )
    with support.broker_connection() as connection:
        connection.default_channel.queue_purge(inventory)
    # and orders queued for workers that are not there,
    queued = post(stack, headers, 4, "queued")
    old = mid_chain + lost + queued
    assert {v for _, v, _ in recorded(old).values()} == {THREE.version}

    # when the workers and the API restart on four steps, the warehouse well again,
    stack.stop_child(stack.child("api"))
    stack.supervisor.env = {**BASE_ENV, **NOTIFY_ON}
    stack.sandbox.clear_faults()
    support.reset_breakers()
    for name in stack.worker_names:
        stack.start_worker(name)
    stack.start_api()
    new = post(stack, headers, 4, "new")

    # then every order completes,
    everyone = old + new
    support.wait_for(
        lambda: set(support.statuses(everyone).values()) == {"completed"},
        timeout=240,
        what=f"{len(everyone)} orders completed",
    )
    # each on the pipeline it was accepted on,
    pipelines = recorded(everyone)
    for order_id in old:
        assert pipelines[order_id] == (THREE.steps, THREE.version, tuple(sorted(THREE.steps)))
    for order_id in new:
        assert pipelines[order_id] == (FOUR.steps, FOUR.version, tuple(sorted(FOUR.steps)))
    # one e-mail to each new order's customer, none for an order on three steps,
    mail = stack.sandbox.ledger("smtp")["effects"]
    assert sorted((e["idempotency_key"], tuple(e["to"])) for e in mail) == sorted(
        (f"{order_id}:notify", (f"new{i}@example.com",)) for i, order_id in enumerate(new)
    )
    # the lost chains found by the sweeper and re-driven from where they stopped,
    redriven = rows(
        "SELECT DISTINCT order_id::text FROM integration_events WHERE event_type = :t",
        t=audit.CHAIN_REDRIVEN,
    )
    assert set(lost) <= {str(order_id) for (order_id,) in redriven}
    # and every effect applied once, as the hub recorded it.
    found, _ = reconcile.check(stack.settings, at_rest=True, grace=0)
    assert found == []
