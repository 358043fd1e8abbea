"""A slice of ``make chaos``: worker kills and one broker restart during a load of orders.

The full suite (random faults, PostgreSQL restarts, relay and API kills, flapping systems)
runs outside CI with ``make chaos``; this slice keeps its core claim under test on every run:
what was accepted gets through, and each downstream effect is applied once.

It restarts the machine's RabbitMQ (every stack on it reconnects), waits for it to answer
again and leaves it running.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Callable

import psutil

from bench import records
from bench.chaos import services
from bench.load import post_until_accepted
from hub.demo.processes import Child
from hub.services import reconcile
from hub.settings import get_settings
from tests import support
from tests.e2e.conftest import Stack
from tests.factories import order_payload

ORDERS = 60
RATE = 5.0  # orders per second: the load spans the faults


class Load:
    """Orders posted on a schedule in the background; a sender retries until accepted."""

    def __init__(self, stack: Stack) -> None:
        self.url = f"{stack.api_url}/orders"
        self.headers = stack.headers
        self.accepted: list[str] = []
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
        if order_id is not None:
            with self._lock:
                self.accepted.append(order_id)

    def join(self) -> None:
        for thread in self._threads:
            thread.join(180)


def running(stack: Stack, name: str) -> Child:
    child = stack.child(name)
    assert isinstance(child, Child)
    return child


def kill_worker(stack: Stack, name: str) -> None:
    """SIGKILL the worker's main process and its pool, then start it again (and wait until
    this start is ready: the log it appends to already says "ready." from the first one)."""
    child = running(stack, name)
    os.killpg(child.popen.pid, signal.SIGKILL)
    child.popen.wait(10)
    offset = child.log_path.stat().st_size
    stack.supervisor.children.remove(child)
    stack.start_worker(name)
    started = running(stack, name)
    stack.supervisor.wait_until(
        started, lambda: b"ready." in started.log_path.read_bytes()[offset:], timeout=60
    )


def kill_pool_child(stack: Stack, name: str) -> None:
    """SIGKILL one pool process; its worker replaces it and the task is delivered again."""
    pool = psutil.Process(running(stack, name).popen.pid).children()
    if pool:
        random.choice(pool).send_signal(signal.SIGKILL)


def revive(stack: Stack) -> list[str]:
    """Start again whatever did not survive (the slice checks the orders, not the uptime)."""
    revived = []
    for child in list(stack.supervisor.children):
        if child.popen.poll() is None or child.name == "sandbox":
            continue
        stack.supervisor.children.remove(child)
        if child.name.startswith("worker"):
            stack.start_worker(child.name)
        else:
            stack.supervisor.hub(child.name, child.name)
        revived.append(child.name)
    return revived


def finished(order_ids: list[str]) -> bool:
    """Every order completed or failed (with its record), and nothing left to publish."""
    found = support.statuses(order_ids)
    done = len(found) == len(order_ids) and set(found.values()) <= {"completed", "failed"}
    return done and records.unsent_outbox() == 0


def at(moment: float, since: float, action: Callable[[], object]) -> None:
    time.sleep(max(0.0, since + moment - time.monotonic()))
    action()


def test_orders_survive_worker_kills_and_a_broker_restart_exactly_once(stack: Stack) -> None:
    load = Load(stack)

    load.start()
    t0 = time.monotonic()
    at(1.5, t0, lambda: kill_worker(stack, "worker1"))
    at(3.0, t0, lambda: kill_pool_child(stack, "worker2"))
    at(5.0, t0, lambda: services.restart_rabbitmq(down_for=2))
    kill_worker(stack, "worker2")  # just after the broker came back
    kill_pool_child(stack, "worker1")
    load.join()
    revive(stack)

    assert len(load.accepted) == ORDERS, "every order was accepted, in the end"
    support.wait_for(
        lambda: (
            set(support.statuses(load.accepted).values()) <= {"completed", "failed"}
            and len(support.statuses(load.accepted)) == ORDERS
        ),
        timeout=120,
        what=f"{ORDERS} orders to finish",
    )
    found, counted = reconcile.check(get_settings(), only=set(load.accepted), settled=True, grace=0)
    assert found == [], found
    assert counted["orders"] == ORDERS
