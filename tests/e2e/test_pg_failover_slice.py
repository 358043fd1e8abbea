"""A slice of ``make pg-chaos``: the hub on a Patroni cluster loses its PostgreSQL primary.

The test starts its own cluster (two PostgreSQL 15 members with ``synchronous_mode``, one
etcd; ports from HUB_TEST_PORT_BASE+200: etcd +200/+201, PostgreSQL +211/+212, Patroni REST
+221/+222; data under var/; every process stopped by pid at the end) and its own hub on it:
database ``<tests' database>_p`` through libpq's multi-host URL, queue prefix ``<tests'
prefix>p``, ports HUB_TEST_PORT_BASE+100..104, the tests' broker. Nothing of the tests' usual
stack is used, so it may run beside it.

1. Orders stream in while the primary is SIGKILLed: Patroni promotes the standby, intake
   answers 503 meanwhile (never a 500), every accepted order completes once, and the old
   primary rejoins as a standby.
2. No 202 for an order a failover lost: the standby's WAL receiver is frozen, so the orders
   posted then are committed on the primary but wait there for the synchronous standby's
   acknowledgement; the primary is SIGKILLed in that wait and the frozen WAL receiver too
   (what it had not written is gone). Not one of those orders was answered 202 before its
   retry went to the new primary, and every order answered 202 is there.
3. ``ensure_database`` on a multi-host URL returns once every member has the new database
   (libpq stops at a standby that answers "database does not exist"), and says which member
   still lacks it when one never gets it.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench import records, state
from bench.pg_cluster.control import PgCluster, PgClusterError, tool
from bench.pg_cluster.layout import Member, PgLayout
from bench.stack import Stack
from hub.db import migrate
from hub.db.hot_path import ACCEPT_ORDER
from hub.services import reconcile
from hub.settings import get_settings
from tests import ports, support
from tests.conftest import TEST_ENV
from tests.e2e.private import place
from tests.factories import order_payload

ROOT = Path(__file__).resolve().parents[2]
ORDERS = 40
RATE = 4.0


@dataclass
class OnCluster:
    cluster: PgCluster
    stack: Stack
    headers: dict[str, str]

    @property
    def orders_url(self) -> str:
        return f"{self.stack.api_url}/orders"


@pytest.fixture(scope="module")
def on_cluster() -> Iterator[OnCluster]:
    try:
        tool("patroni")
        tool("etcd")
    except PgClusterError as exc:
        pytest.fail(f"this test needs Patroni and etcd: {exc}", pytrace=False)
    prefix = os.environ["HUB_QUEUE_PREFIX"]
    cluster = PgCluster(
        PgLayout(
            base_dir=ROOT / "var" / f"pg-{prefix}p",
            port_base=ports.port("pg_failover_cluster"),
            size=2,
        )
    )
    try:
        cluster.up()
    except PgClusterError as exc:
        cluster.down()
        pytest.fail(f"this test needs a Patroni cluster of its own: {exc}", pytrace=False)
    saved = dict(os.environ)
    where = place("p", hub="pg_failover_hub")
    try:
        os.environ["HUB_DATABASE_URL"] = cluster.layout.database_url(where.database)
        where.apply(HUB_RETRY__MAX_DELAY="4", HUB_BREAKER__MIN_CALLS="1000")
        state.fresh_database()
        state.purge_queues()
        log_dir = ROOT / "var" / "test-logs" / get_settings().queue_prefix
        stack = Stack(get_settings(), log_dir, workers=1, concurrency=4)
        try:
            stack.start()
            yield OnCluster(cluster, stack, support.api_key_headers(where.queue_prefix))
        finally:
            stack.stop()
            state.purge_queues()
    finally:
        cluster.down()
        os.environ.clear()
        os.environ.update(saved)
        get_settings.cache_clear()


@pytest.fixture(autouse=True)
def _no_faults() -> Iterator[None]:
    """Replaces the package's: this module runs on its own stack, not the tests' usual one."""
    yield


@dataclass
class Sender:
    """Posts orders as a CRM does (each until accepted) and keeps every answer it got."""

    url: str
    headers: dict[str, str]
    answers: dict[str, list[int]] = field(default_factory=dict)  # external id -> statuses
    accepted: dict[str, str] = field(default_factory=dict)  # external id -> order id
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, payload: dict[str, object], *, give_up_after: float = 120) -> None:
        external_id = str(payload["external_id"])
        deadline = time.monotonic() + give_up_after
        while time.monotonic() < deadline:
            try:
                reply = requests.post(self.url, json=payload, headers=self.headers, timeout=60)
                status = reply.status_code
            except requests.RequestException:
                status = 0
            with self.lock:
                self.answers.setdefault(external_id, []).append(status)
                if status == 202:
                    self.accepted[external_id] = str(reply.json()["order_id"])
                    return
            time.sleep(0.3)

    def in_threads(
        self, payloads: list[dict[str, object]], *, rate: float
    ) -> list[threading.Thread]:
        def later(n: int, payload: dict[str, object]) -> None:
            time.sleep(n / rate)
            self.send(payload)

        threads = [
            threading.Thread(target=later, args=(n, p), daemon=True) for n, p in enumerate(payloads)
        ]
        for thread in threads:
            thread.start()
        return threads


def finish(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join(180)
    assert not any(t.is_alive() for t in threads), "a sender still waits for its answer"


def assert_exactly_once(order_ids: list[str]) -> None:
    def finished() -> bool:
        found = support.statuses(order_ids)
        done = len(found) == len(order_ids) and set(found.values()) <= {"completed", "failed"}
        return done and records.unsent_outbox() == 0

    support.wait_for(finished, timeout=120, what=f"{len(order_ids)} orders to finish")
    assert set(support.statuses(order_ids).values()) == {"completed"}
    found, counted = reconcile.check(get_settings(), only=set(order_ids), at_rest=True, grace=0)
    assert found == [], found
    assert counted["orders"] == len(order_ids)


def role_of(cluster: PgCluster, role: str) -> Member:
    return next(cluster.layout.member(s.name) for s in cluster.members() if s.role == role)


def member_rows(member: Member, sql: str) -> list[str]:
    """A column from a member itself (database ``postgres``), not through the hub's URL."""
    url = f"postgresql+psycopg2://postgres@127.0.0.1:{member.pg_port}/postgres"
    engine = create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            return [str(value) for value in connection.execute(text(sql)).scalars()]
    finally:
        engine.dispose()


# psycopg2 sends a statement with its values in it. The intake's is a prepared statement
# (hub.db.prepared), ``EXECUTE hub_accept_order('<order id>', ...)``, or with
# HUB_PREPARED_STATEMENTS=false its text, ``... VALUES (CAST('<order id>' AS uuid), ...``:
# either way the order id is its first quoted uuid.
ACCEPT = f"EXECUTE {ACCEPT_ORDER.name}("
ORDER_ID = re.compile(r"'([0-9a-f-]{36})'")


def waiting_for_the_standby(primary: Member) -> list[str]:
    """Order ids committed on the primary whose sessions wait for the synchronous standby."""
    statements = member_rows(
        primary,
        "SELECT query FROM pg_stat_activity WHERE wait_event = 'SyncRep' "
        f"AND (query LIKE '{ACCEPT}%' OR query LIKE '%INSERT INTO orders%')",
    )
    return [found.group(1) for q in statements if (found := ORDER_ID.search(q))]


def wal_receiver(cluster: PgCluster, standby: Member) -> psutil.Process:
    postmaster = cluster.postmaster_pid(standby)
    assert postmaster is not None, f"{standby.name} runs no PostgreSQL"
    for child in psutil.Process(postmaster).children():
        if "walreceiver" in " ".join(child.cmdline()):
            return child
    raise AssertionError(f"{standby.name} has no WAL receiver")


def rejoin(cluster: PgCluster, member: Member) -> None:
    cluster.start(member)
    cluster.wait_healthy(timeout=120)


def test_orders_complete_once_when_the_primary_is_killed(on_cluster: OnCluster) -> None:
    hub, cluster = on_cluster, on_cluster.cluster
    primary = role_of(cluster, "leader")
    sender = Sender(hub.orders_url, hub.headers)
    threads = sender.in_threads([order_payload() for _ in range(ORDERS)], rate=RATE)
    support.wait_for(lambda: len(sender.accepted) >= 8, timeout=60, what="orders before the kill")
    cluster.kill(primary)
    promoted = cluster.wait_leader(other_than=primary, timeout=60)
    finish(threads)

    assert len(sender.accepted) == ORDERS, "every order was accepted in the end"
    seen = {status for statuses in sender.answers.values() for status in statuses}
    assert 503 in seen, "intake said 503 while there was no primary"
    assert seen <= {202, 503}, f"intake answered only 202 or 503: {seen}"
    assert_exactly_once(list(sender.accepted.values()))
    rejoin(cluster, primary)  # a standby again, streaming from the promoted member
    assert cluster.leader() == promoted


def test_no_202_for_an_order_the_failover_lost(on_cluster: OnCluster) -> None:
    hub, cluster = on_cluster, on_cluster.cluster
    primary = role_of(cluster, "leader")
    standby = role_of(cluster, "sync_standby")
    receiver = wal_receiver(cluster, standby)
    sender = Sender(hub.orders_url, hub.headers)
    early = [order_payload() for _ in range(3)]
    finish(sender.in_threads(early, rate=10))  # answered 202 before anything goes wrong

    receiver.send_signal(signal.SIGSTOP)
    try:
        in_flight = [order_payload() for _ in range(5)]
        threads = sender.in_threads(in_flight, rate=20)
        # Each of them committed on the primary, waiting for the standby's acknowledgement.
        support.wait_for(
            lambda: len(waiting_for_the_standby(primary)) >= len(in_flight),
            timeout=30,
            what="the orders to wait for the synchronous standby",
        )
        committed_there = waiting_for_the_standby(primary)
        assert not any(p["external_id"] in sender.accepted for p in in_flight)
        cluster.kill(primary)
    finally:
        receiver.send_signal(signal.SIGKILL)  # what it held unwritten dies with it
    promoted = cluster.wait_leader(other_than=primary, timeout=60)
    assert promoted == standby
    finish(threads)

    for payload in in_flight:
        statuses = sender.answers[str(payload["external_id"])]
        assert statuses[0] != 202, f"a 202 before the standby had the order: {statuses}"
        assert statuses[-1] == 202, statuses
    # The failover lost those commits, and no 202 carries one of their ids: the senders' retries
    # were taken by the new primary as new orders.
    assert len(committed_there) == len(in_flight), committed_there
    assert support.statuses(committed_there) == {}, "the commits the standby never had are gone"
    assert not set(committed_there) & set(sender.accepted.values())
    accepted = list(sender.accepted.values())
    assert len(accepted) == len(early) + len(in_flight)
    found = support.statuses(accepted)
    assert set(found) == set(accepted), "every order answered 202 is on the new primary"
    assert_exactly_once(accepted)
    rejoin(cluster, primary)


def test_ensure_database_waits_for_every_member(on_cluster: OnCluster) -> None:
    cluster = on_cluster.cluster
    standby = role_of(cluster, "sync_standby")
    primary = role_of(cluster, "leader")
    name = f"hub_created_{uuid.uuid4().hex[:8]}"
    # The standby first: libpq stops there if it does not have the database yet.
    url = PgLayout.multi_host_url([standby.pg_port, primary.pg_port], name)
    assert migrate.ensure_database(url) is True
    for member in (standby, primary):
        has = f"SELECT count(*) FROM pg_database WHERE datname = '{name}'"
        assert int(member_rows(member, has)[0]) == 1, member.name
    migrate.upgrade(url)
    assert migrate.ensure_database(url) is False


def test_ensure_database_names_a_member_that_never_has_it(on_cluster: OnCluster) -> None:
    primary = role_of(on_cluster.cluster, "leader")
    machine = make_url(TEST_ENV["HUB_DATABASE_URL"])
    # The machine's own PostgreSQL is no member of the cluster: it never gets the database.
    url = PgLayout.multi_host_url(
        [primary.pg_port, machine.port or 5432], f"hub_alone_{uuid.uuid4().hex[:8]}"
    )
    with pytest.raises(migrate.NotReplicated, match=f"127.0.0.1:{machine.port or 5432}"):
        migrate.ensure_database(url, replicated_within=1)
