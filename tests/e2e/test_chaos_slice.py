"""A slice of ``make chaos``: worker kills and one broker restart during a load of orders,
some of which their sender cancels.

The full suite (random faults, PostgreSQL restarts, relay and API kills, flapping systems)
runs outside CI with ``make chaos``; this slice keeps its core claim under test on every run:
every accepted order completes, or (its cancel taken) ends cancelled with each effect undone
once, and each downstream effect is applied exactly once, as the sandbox systems' own ledgers
count them.

The broker it restarts is a RabbitMQ node of its own (``<tests' prefix>k1@localhost``, AMQP
port HUB_TEST_PORT_BASE+60), under a hub of its own (database ``<tests' database>_k``, queue
prefix ``<tests' prefix>k``, ports +55..59): the machine's RabbitMQ, which other suites and
stacks share, is never stopped.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from bench import records
from bench.chaos.cancels import TAKEN, cancel_until_answered
from bench.chaos.verdict import judge_ledgers
from bench.load import post_until_accepted
from hub.core.registry import REGISTRY
from hub.services import reconcile
from hub.settings import get_settings
from tests import support
from tests.e2e.private import OwnHub, layout, own_hub, place
from tests.factories import order_payload

ORDERS = 60
RATE = 5.0  # orders per second: the load spans the faults
BROKER_DOWN_FOR = 2.0  # seconds between the node's stop and its start
# Every 6th order is cancelled by its sender, 0-2 s after it was accepted: before its first
# step, half way, or once completed (409, and it stays completed), among the faults.
CANCELLED_EVERY = 6
# The accounting system answers in a second, so that a chain lasts longer than a cancel takes to
# arrive even on a machine busy with other suites (where the sender's own process is starved and
# its cancels came after every chain had completed: all ten answered 409, no cancel taken).
ACCOUNTING_LATENCY_MS = 1000


@pytest.fixture(scope="module")
def hub() -> Iterator[OwnHub]:
    with own_hub(
        layout("k", size=1, nodes="chaos_node", ctl="chaos_ctl"),
        place("k", hub="chaos_hub"),
        workers=2,
        concurrency=2,
    ) as own:
        yield own


@pytest.fixture(autouse=True)
def _no_faults(hub: OwnHub) -> Iterator[None]:
    """Replaces the package's: this module runs on its own stack, not the tests' usual one."""
    hub.stack.sandbox.clear_faults()
    yield


class Load:
    """Orders posted on a schedule in the background; a sender retries until accepted."""

    def __init__(self, hub: OwnHub) -> None:
        self.api_url = hub.stack.api_url
        self.url = f"{hub.stack.api_url}/orders"
        self.headers = hub.headers
        self.accepted: list[str] = []
        self.cancels: dict[str, int] = {}  # order id -> the cancel's answer
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._send, args=(n,), daemon=True) for n in range(ORDERS)
        ]
        self._started = 0.0

    def start(self) -> None:
        self._started = time.monotonic()
        for thread in self._threads:
            thread.start()

    def _send(self, n: int) -> None:
        time.sleep(n / RATE)
        order_id = post_until_accepted(
            self.url, order_payload(), headers=self.headers, give_up_after=120
        )
        if order_id is None:
            return
        with self._lock:
            self.accepted.append(order_id)
        if n % CANCELLED_EVERY == CANCELLED_EVERY // 2:
            time.sleep(random.Random(n).uniform(0, 2))  # a moment of its chain, not a wait
            code = cancel_until_answered(self.api_url, order_id, self.headers, give_up_after=120)
            with self._lock:
                self.cancels[order_id] = code

    def join(self) -> None:
        for thread in self._threads:
            thread.join(180)


def kill_worker(hub: OwnHub, n: int) -> None:
    """SIGKILL worker ``n``'s main process and its pool, then start it again and wait until
    this start is ready (the log it appends to already says "ready." from the first one)."""
    stack = hub.stack
    name = stack.worker_names[n - 1]
    child = stack.child(name)
    os.killpg(child.popen.pid, signal.SIGKILL)
    child.popen.wait(10)
    offset = child.log_path.stat().st_size
    stack.forget(child)
    started = stack.start_worker(name, wait=False)
    stack.supervisor.wait_until(
        started, lambda: b"ready." in started.log_path.read_bytes()[offset:], timeout=90
    )


def stop_worker(hub: OwnHub, n: int) -> None:
    """SIGTERM worker ``n`` as a deploy does (Celery's warm shutdown lets its running steps
    finish), then start it again."""
    stack = hub.stack
    name = stack.worker_names[n - 1]
    stack.stop_child(stack.child(name), timeout=60)
    stack.start_worker(name)


def restart_broker(hub: OwnHub) -> None:
    """Stop the hub's only RabbitMQ node cleanly, keep it down a while, start it again."""
    node = hub.cluster.layout.node(1)
    hub.cluster.stop(node)
    time.sleep(BROKER_DOWN_FOR)  # the outage itself, not a wait for something to happen
    hub.cluster.restart(node)


def revive(hub: OwnHub) -> list[str]:
    """Start again whatever did not survive (the slice checks the orders, not the uptime)."""
    stack = hub.stack
    revived = []
    for child in list(stack.supervisor.children):
        if child.popen.poll() is None or child.name == "sandbox":
            continue
        stack.forget(child)
        if child.name in stack.worker_names:
            stack.start_worker(child.name)
        elif child.name == "api":
            stack.start_api()
        else:
            stack.start_relay()
        revived.append(child.name)
    return revived


def settled(order_ids: list[str]) -> bool:
    """Every order has reached an end (completed, failed or cancelled) and nothing is left to
    publish."""
    found = support.statuses(order_ids)
    ends = {"completed", "failed", "cancelled"}
    done = len(found) == len(order_ids) and set(found.values()) <= ends
    return done and records.unsent_outbox() == 0


def at(moment: float, since: float, action: Callable[[], object]) -> None:
    time.sleep(max(0.0, since + moment - time.monotonic()))
    action()


def test_orders_survive_worker_kills_and_a_broker_restart_exactly_once(hub: OwnHub) -> None:
    hub.stack.sandbox.set_faults("accounting", latency_ms=ACCOUNTING_LATENCY_MS)
    load = Load(hub)

    load.start()
    t0 = time.monotonic()
    at(1.5, t0, lambda: kill_worker(hub, 1))
    at(3.0, t0, lambda: stop_worker(hub, 2))
    at(5.0, t0, lambda: restart_broker(hub))
    kill_worker(hub, 2)  # just after the broker came back
    stop_worker(hub, 1)
    load.join()
    revive(hub)

    assert len(load.accepted) == ORDERS, "every order was accepted, in the end"
    assert set(load.cancels.values()) <= {TAKEN, 409}, load.cancels  # each cancel answered
    cancelled = {o for o, code in load.cancels.items() if code == TAKEN}
    assert cancelled, load.cancels
    support.wait_for(lambda: settled(load.accepted), timeout=180, what=f"{ORDERS} orders to end")
    statuses = support.statuses(load.accepted)
    assert {o: s for o, s in statuses.items() if o not in cancelled and s != "completed"} == {}
    # The downstream's own count, not the hub's: one effect per completed order in every
    # system; each effect of a cancelled one undone exactly once; no compensation otherwise.
    steps = get_settings().pipeline.steps
    effects = {
        step: hub.stack.sandbox.ledger(REGISTRY.system_of(step))["effects"] for step in steps
    }
    undoable = {step for step in steps if REGISTRY.step(step).compensation is not None}
    assert judge_ledgers(effects, statuses, cancelled, undoable=undoable) == []
    for step in steps:
        keys = {e["idempotency_key"] for e in effects[step]}
        assert {k.split(":")[0] for k in keys} <= set(load.accepted), f"{step}: other orders"
    found, counted = reconcile.check(get_settings(), only=set(load.accepted), at_rest=True, grace=0)
    assert found == [], found
    assert counted["orders"] == ORDERS
