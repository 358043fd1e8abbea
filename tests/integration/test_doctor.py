"""``hub doctor`` finds a retry stranded in the shared delayed queues, and a shared vhost."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from kombu import Queue
from kombu.transport.native_delayed_delivery import (
    MAX_LEVEL,
    bind_queue_to_native_delayed_delivery_exchange,
    calculate_routing_key,
    declare_native_delayed_delivery_exchanges_and_queues,
    level_name,
)

from hub.broker.topology import Topology
from hub.observability import doctor
from hub.settings import get_settings
from tests import support

LEVELS = [level_name(level) for level in range(MAX_LEVEL + 1)]


def run_doctor(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub", "doctor", "--window", "3", "--timeout", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
    )


@pytest.fixture
def stranded() -> Iterator[None]:
    """A retry parked for the hub's exchange, which is deleted while the retry waits (the
    operator's mistake the README warns about). Afterwards the parked retry is purged and the
    exchange declared again."""
    topology = Topology.for_settings(get_settings())
    with support.broker_connection() as connection:
        declare_native_delayed_delivery_exchanges_and_queues(connection, "quorum")
        channel = connection.channel()
        queue = topology.work_queue("inventory")
        bind_queue_to_native_delayed_delivery_exchange(connection, queue)
        connection.Producer(channel).publish(
            {"retry": 1},
            exchange=level_name(MAX_LEVEL),
            routing_key=calculate_routing_key(60, queue.routing_key),
        )
        channel.exchange_delete(topology.exchange.name)
    yield
    with support.broker_connection() as connection:
        for level in LEVELS:
            connection.channel().queue_purge(level)
    support.declare_and_purge_queues()


def test_a_retry_parked_for_a_deleted_exchange_is_found_stranded(stranded: None) -> None:
    topology = Topology.for_settings(get_settings())
    with support.broker_connection() as connection:
        found = doctor.check_stranded(connection, topology, window=1)

    assert [p.check for p in found] == ["stranded delayed messages"]
    assert f"exchange {topology.exchange.name}" in found[0].found
    assert "cannot be routed" in found[0].found and "hub relay" in found[0].fix

    ran = run_doctor()
    assert ran.returncode == 1
    assert "stranded delayed messages" in ran.stdout
    assert f"exchange {topology.exchange.name} does not exist" in ran.stdout


def test_nothing_stranded_when_the_delayed_queues_flow() -> None:
    with support.broker_connection() as connection:
        declare_native_delayed_delivery_exchanges_and_queues(connection, "quorum")
        found = doctor.check_stranded(connection, Topology.for_settings(get_settings()), window=1)
    assert found == []


def test_the_default_vhost_is_advice_with_its_fix_not_a_problem() -> None:
    # Passive declares and reads only: nothing is created or changed on the default vhost.
    ran = run_doctor(HUB_BROKER_URL="amqp://guest:guest@127.0.0.1:5672//")

    assert "vhost (advice): the hub uses RabbitMQ's default vhost '/'" in ran.stdout
    assert "before production: give the hub a vhost of its own: rabbitmqctl add_vhost" in (
        " ".join(ran.stdout.split())
    )
    # Whatever else doctor finds there (the tests' queues live on their own vhost), the
    # default vhost is not counted among the problems.
    assert "\nvhost:" not in ran.stdout


def test_a_queue_of_the_wrong_type_is_named() -> None:
    prefix = f"{get_settings().queue_prefix}odd"
    topology = Topology(prefix)
    with support.broker_connection() as connection:
        channel = connection.channel()
        classic = Queue(topology.queue_name("inventory"), topology.exchange, durable=True)
        classic.bind(channel).declare()
        try:
            found = doctor.check_topology(connection, topology)
        finally:
            connection.channel().queue_delete(classic.name)
            connection.channel().exchange_delete(prefix)

    wrong = [p for p in found if p.check == "queue type"]
    assert len(wrong) == 1 and topology.queue_name("inventory") in wrong[0].found
