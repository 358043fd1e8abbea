"""A hub of the test's own on RabbitMQ nodes of its own, for tests that stop or kill a broker.

The machine's RabbitMQ is shared by every suite and stack on the machine: a test never stops it.
A test that needs a broker to go away starts nodes of its own (``bench.cluster``: own node names,
ports, data directories and Erlang cookie), a hub on them with its own database, queue prefix and
ports, and stops the nodes by their pids at the end. Everything is derived from the tests'
HUB_TEST_PORT_BASE and queue prefix, so two suites on one machine never meet.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from bench import state
from bench.cluster.control import Cluster, ClusterError, script
from bench.cluster.layout import Layout
from bench.cluster.stack import ClusterStack
from bench.env import StackPlace
from hub.core.registry import REGISTRY
from hub.settings import get_settings
from tests import ports, support

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class OwnHub:
    """The nodes, the hub's processes on them and an intake key."""

    cluster: Cluster
    stack: ClusterStack
    headers: dict[str, str]

    @property
    def work_queues(self) -> list[str]:
        prefix = get_settings().queue_prefix
        return [f"{prefix}.{step}" for step in REGISTRY.step_names]


def layout(suffix: str, *, size: int, nodes: str, ctl: str) -> Layout:
    """Nodes named after the tests' queue prefix and ``suffix``, on the suite's ports
    ``nodes`` (AMQP ports, then distribution ports: ``2 * size``) and ``ctl`` (rabbitmqctl's)."""
    prefix = os.environ["HUB_QUEUE_PREFIX"]
    count = ports.OFFSETS[nodes][1]
    assert count == 2 * size, f"{nodes} takes {count} ports, {size} node(s) need {2 * size}"
    amqp_base = ports.port(nodes)
    return Layout(
        base_dir=ROOT / "var" / f"broker-{prefix}{suffix}",
        prefix=f"{prefix}{suffix}",
        amqp_base=amqp_base,
        dist_base=amqp_base + size,
        size=size,
        ctl_base=ports.port(ctl),
    )


def place(suffix: str, *, hub: str) -> StackPlace:
    """The hub's own database, queue prefix and ports ``hub`` of the suite (API, then the
    three sandboxes and a baseline)."""
    database = make_url(os.environ["HUB_DATABASE_URL"]).database or "hub_test"
    prefix = os.environ["HUB_QUEUE_PREFIX"]
    return StackPlace(
        database=f"{database}_{suffix}",
        queue_prefix=f"{prefix}{suffix}",
        port_base=ports.port(hub),
    )


@contextmanager
def own_hub(
    nodes: Layout, where: StackPlace, *, workers: int, concurrency: int, **settings: str
) -> Iterator[OwnHub]:
    """Start the nodes, then the hub on them; stop both (nodes by pid) and restore the env."""
    try:
        script("rabbitmq-server")
        script("rabbitmqctl")
    except ClusterError as exc:
        pytest.fail(f"this test needs a local RabbitMQ installation: {exc}", pytrace=False)
    cluster = Cluster(nodes)
    try:
        cluster.up()
    except ClusterError as exc:
        pytest.fail(f"this test needs RabbitMQ nodes of its own: {exc}", pytrace=False)
    saved = dict(os.environ)
    try:
        where.apply(HUB_BROKER_URL=nodes.broker_url(first=1), **settings)
        state.fresh_database()
        state.purge_queues()  # declared while every node runs: a replica on each
        log_dir = ROOT / "var" / "test-logs" / get_settings().queue_prefix
        stack = ClusterStack(
            get_settings(), log_dir, workers=workers, concurrency=concurrency, layout=nodes
        )
        try:
            stack.start()
            yield OwnHub(cluster, stack, support.api_key_headers(where.queue_prefix))
        finally:
            stack.stop()
    finally:
        cluster.down()
        os.environ.clear()
        os.environ.update(saved)
        get_settings.cache_clear()
