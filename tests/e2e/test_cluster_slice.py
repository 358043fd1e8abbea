"""A slice of ``make cluster-chaos``: the hub on a 3-node RabbitMQ cluster loses a node.

The test starts its own cluster (hubt1..3@localhost, AMQP 127.0.0.1:5721-5723; stopped by pid
at the end), and its own hub on it: database ``<tests' database>_cluster``, queue prefix
``<tests' prefix>c``, ports HUB_TEST_PORT_BASE+40..43, three workers each starting its
failover list at another node. Nothing of the tests' usual stack is used, so it may run
beside it.

1. 60 orders stream in while the node leading the work queues is SIGKILLed: all complete,
   each step applied once.
2. Retries parked in Celery's ``celery_delayed_*`` quorum queues (the ERP answering 503 with
   Retry-After) when the node leading those queues is SIGKILLed: still every order once.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from bench import records, state
from bench.cluster.control import Cluster, ClusterError, script
from bench.cluster.layout import Layout
from bench.cluster.queues import list_queues, main_leader
from bench.cluster.stack import ClusterStack
from bench.env import StackPlace
from bench.load import post_until_accepted
from hub.core.pipeline import STEPS
from hub.db import audit
from hub.services import reconcile
from hub.settings import get_settings
from tests import support
from tests.conftest import PORT_BASE
from tests.factories import order_payload

ROOT = Path(__file__).resolve().parents[2]
ORDERS = 60
RATE = 5.0
PARKED = 20


@dataclass
class OnCluster:
    cluster: Cluster
    stack: ClusterStack
    headers: dict[str, str]

    @property
    def work_queues(self) -> list[str]:
        prefix = get_settings().queue_prefix
        return [f"{prefix}.{step}" for step in STEPS]


def _place() -> StackPlace:
    database = make_url(os.environ["HUB_DATABASE_URL"]).database or "hub_test"
    prefix = os.environ["HUB_QUEUE_PREFIX"]
    return StackPlace(
        database=f"{database}_cluster", queue_prefix=f"{prefix}c", port_base=PORT_BASE + 40
    )


@pytest.fixture(scope="module")
def on_cluster() -> Iterator[OnCluster]:
    try:
        script("rabbitmq-server")
        script("rabbitmqctl")
    except ClusterError as exc:
        pytest.fail(f"this test needs a local RabbitMQ installation: {exc}", pytrace=False)
    layout = Layout(
        base_dir=ROOT / "var" / f"cluster-test-{os.environ['HUB_QUEUE_PREFIX']}",
        prefix="hubt",
        amqp_base=5721,
        dist_base=25721,
    )
    cluster = Cluster(layout)
    try:
        cluster.up()
    except ClusterError as exc:
        pytest.fail(f"this test needs a local 3-node RabbitMQ cluster: {exc}", pytrace=False)
    saved = dict(os.environ)
    try:
        # Retries parked for several seconds (test 2), the breaker out of the way.
        _place().apply(
            HUB_BROKER_URL=layout.broker_url(first=1),
            HUB_RETRY__MAX_DELAY="8",
            HUB_RETRY__MAX_ATTEMPTS="12",
            HUB_BREAKER__MIN_CALLS="1000",
        )
        state.fresh_database()
        state.purge_queues()  # declared while all three nodes run: a replica on each
        settings = get_settings()
        log_dir = ROOT / "var" / "test-logs" / settings.queue_prefix
        stack = ClusterStack(settings, log_dir, workers=3, concurrency=1, layout=layout)
        try:
            stack.start()
            yield OnCluster(cluster, stack, support.api_key_headers("cluster"))
        finally:
            stack.stop()
    finally:
        cluster.down()
        os.environ.clear()
        os.environ.update(saved)
        get_settings.cache_clear()


@pytest.fixture(autouse=True)
def _no_faults(on_cluster: OnCluster) -> Iterator[None]:
    """Replaces the package's: this module runs on its own stack, not the tests' usual one."""
    on_cluster.stack.sandbox.clear_faults()
    yield
    on_cluster.stack.sandbox.clear_faults()


def post_orders(hub: OnCluster, count: int, *, rate: float) -> list[str]:
    """``count`` orders at ``rate`` a second, each sent until accepted; their ids."""
    accepted: list[str] = []
    lock = threading.Lock()

    def send(n: int) -> None:
        time.sleep(n / rate)
        order_id = post_until_accepted(
            f"{hub.stack.api_url}/orders", order_payload(), headers=hub.headers, give_up_after=90
        )
        if order_id is not None:
            with lock:
                accepted.append(order_id)

    threads = [threading.Thread(target=send, args=(n,), daemon=True) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return accepted


def all_finished(order_ids: list[str]) -> bool:
    found = support.statuses(order_ids)
    done = len(found) == len(order_ids) and set(found.values()) <= {"completed", "failed"}
    return done and records.unsent_outbox() == 0


def assert_exactly_once(order_ids: list[str]) -> None:
    support.wait_for(
        lambda: all_finished(order_ids), timeout=120, what=f"{len(order_ids)} orders to finish"
    )
    assert set(support.statuses(order_ids).values()) == {"completed"}
    found, counted = reconcile.check(get_settings(), only=set(order_ids), settled=True, grace=0)
    assert found == [], found
    assert counted["orders"] == len(order_ids)


def parked_now() -> dict[str, int]:
    """Messages in each ``celery_delayed_*`` queue now, by passive declare: the leader's own
    count (``list_queues``' counts of a quorum queue lag by up to a 5 s tick)."""
    found: dict[str, int] = {}
    with state.broker() as connection:
        for level in range(28):
            channel = connection.channel()  # a missing queue closes the channel it was asked on
            try:
                _, messages, _ = channel.queue_declare(f"celery_delayed_{level}", passive=True)
            except Exception:
                continue
            if messages:
                found[f"celery_delayed_{level}"] = int(messages)
            channel.close()
    return found


def restart_later(cluster: Cluster, node_name: str, *, after: float) -> threading.Thread:
    def run() -> None:
        time.sleep(after)
        cluster.restart(cluster.layout.node(node_name))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_orders_complete_once_when_the_work_queues_leader_is_killed(on_cluster: OnCluster) -> None:
    hub = on_cluster
    members = {i.name: i.members for i in list_queues(hub.cluster) if i.name in hub.work_queues}
    assert all(len(m) == 3 for m in members.values()), members  # a replica on every node
    leader = main_leader(hub.cluster, hub.work_queues)

    def kill_at_3s() -> None:
        time.sleep(3)
        hub.cluster.kill(hub.cluster.layout.node(leader))

    killer = threading.Thread(target=kill_at_3s, daemon=True)
    killer.start()
    accepted = post_orders(hub, ORDERS, rate=RATE)
    killer.join(30)

    assert len(accepted) == ORDERS, "intake kept accepting while a node was gone"
    assert_exactly_once(accepted)
    assert main_leader(hub.cluster, hub.work_queues) != leader  # a new leader took over
    hub.cluster.restart(hub.cluster.layout.node(leader))
    hub.cluster.wait_members(3)


def test_retries_parked_in_the_delayed_queues_survive_their_leaders_loss(
    on_cluster: OnCluster,
) -> None:
    hub = on_cluster
    # Every ERP call fails with a 503 asking to come back in 6 s: each order's first step is
    # parked in celery_delayed_* (6 s = levels 1 and 2 of Celery's binary delay queues).
    hub.stack.sandbox.set_faults("erp", error_rate=1.0, status=503, retry_after=6)
    accepted = post_orders(hub, PARKED, rate=20)
    support.wait_for(
        lambda: records.event_counts()[audit.RETRY_SCHEDULED] >= PARKED,
        timeout=30,
        what=f"{PARKED} retries scheduled",
    )
    holding = parked_now()
    assert holding, "retries are parked in the delayed-delivery queues"
    parked = [i for i in list_queues(hub.cluster) if i.name in holding]
    assert all(i.type == "quorum" and len(i.members) == 3 for i in parked), parked
    leader = parked[0].leader

    hub.cluster.kill(hub.cluster.layout.node(leader))
    hub.stack.sandbox.clear_faults()  # the ERP answers again when the retries come due
    back = restart_later(hub.cluster, leader, after=5)

    assert_exactly_once(accepted)
    assert records.event_counts()[audit.RETRY_SCHEDULED] >= PARKED
    back.join(60)
    hub.cluster.wait_members(3)
