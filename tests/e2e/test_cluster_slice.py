"""A slice of ``make cluster-chaos``: the hub on a 3-node RabbitMQ cluster loses a node.

The test starts its own cluster (nodes ``<tests' prefix>c1..3@localhost``, AMQP ports
HUB_TEST_PORT_BASE+45..47, distribution ports +48..50; stopped by pid at the end), and its own
hub on it: database ``<tests' database>_c``, queue prefix ``<tests' prefix>c``, ports
HUB_TEST_PORT_BASE+40..44, three workers each starting its failover list at another node.
Nothing of the tests' usual stack is used, so it may run beside it.

1. 60 orders stream in while the node leading the work queues is SIGKILLed: all complete,
   each step applied once.
2. Retries parked in Celery's ``celery_delayed_*`` quorum queues (the ERP answering 503 with
   Retry-After) when the node leading those queues is SIGKILLed: still every order once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from bench import records, state
from bench.cluster.control import Cluster
from bench.cluster.queues import list_queues, main_leader
from bench.load import post_until_accepted
from hub.db import audit
from hub.db.engine import get_engine
from hub.services import reconcile
from hub.settings import get_settings
from tests import support
from tests.e2e.private import OwnHub, layout, own_hub, place
from tests.factories import order_payload

ORDERS = 60
RATE = 5.0
PARKED = 20


@pytest.fixture(scope="module")
def on_cluster() -> Iterator[OwnHub]:
    # Retries parked for several seconds (test 2), the breaker out of the way.
    with own_hub(
        layout("c", size=3, nodes="cluster_nodes", ctl="cluster_ctl"),
        place("c", hub="cluster_hub"),
        workers=3,
        concurrency=1,
        HUB_RETRY__MAX_DELAY="8",
        HUB_RETRY__MAX_ATTEMPTS="12",
        HUB_BREAKER__MIN_CALLS="1000",
    ) as hub:
        yield hub


@pytest.fixture(autouse=True)
def _no_faults(on_cluster: OwnHub) -> Iterator[None]:
    """Replaces the package's: this module runs on its own stack, not the tests' usual one."""
    on_cluster.stack.sandbox.clear_faults()
    yield
    on_cluster.stack.sandbox.clear_faults()


def post_orders(hub: OwnHub, count: int, *, rate: float) -> list[str]:
    """``count`` orders at ``rate`` a second, each sent until accepted; their ids."""
    accepted: list[str] = []
    lock = threading.Lock()

    def send(n: int) -> None:
        time.sleep(n / rate)  # the n-th order's moment in a stream at ``rate``
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
    found, counted = reconcile.check(get_settings(), only=set(order_ids), at_rest=True, grace=0)
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


def orders_stored() -> int:
    with get_engine().connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM orders")).scalar_one())


def restart_later(cluster: Cluster, node_name: str, *, after: float) -> threading.Thread:
    def run() -> None:
        time.sleep(after)  # how long the node stays down, not a wait for something to happen
        cluster.restart(cluster.layout.node(node_name))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_orders_complete_once_when_the_work_queues_leader_is_killed(on_cluster: OwnHub) -> None:
    hub = on_cluster
    members = {i.name: i.members for i in list_queues(hub.cluster) if i.name in hub.work_queues}
    assert all(len(m) == 3 for m in members.values()), members  # a replica on every node
    leader = main_leader(hub.cluster, hub.work_queues)

    killed = threading.Event()

    def kill_once_orders_flow() -> None:
        # A quarter of the orders in: the rest arrive while the node is gone.
        support.wait_for(
            lambda: orders_stored() >= ORDERS // 4, timeout=60, what="orders to flow in"
        )
        hub.cluster.kill(hub.cluster.layout.node(leader))
        killed.set()

    killer = threading.Thread(target=kill_once_orders_flow, daemon=True)
    killer.start()
    accepted = post_orders(hub, ORDERS, rate=RATE)
    killer.join(60)

    assert killed.is_set(), "the leader was killed while orders streamed in"
    assert len(accepted) == ORDERS, "intake kept accepting while a node was gone"
    assert_exactly_once(accepted)
    assert main_leader(hub.cluster, hub.work_queues) != leader  # a new leader took over
    hub.cluster.restart(hub.cluster.layout.node(leader))
    hub.cluster.wait_members(3)


def test_retries_parked_in_the_delayed_queues_survive_their_leaders_loss(
    on_cluster: OwnHub,
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
