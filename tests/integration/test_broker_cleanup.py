"""The session's broker clean-up deletes the queues and exchanges of its prefix, and only those."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import pytest
from amqp.exceptions import NotFound

from hub.broker.topology import Topology
from hub.settings import get_settings
from tests import ports, support
from tests.broker_cleanup import clean


def exists(name: str) -> bool:
    with support.broker_connection() as connection:
        try:
            connection.channel().queue_declare(name, passive=True)
        except NotFound:
            return False
        return True


@pytest.fixture
def two_prefixes() -> tuple[str, str]:
    """A prefix of this test's own and a neighbour whose name starts like it, both declared."""
    own, neighbour = f"{get_settings().queue_prefix}cl", f"{get_settings().queue_prefix}clx"
    with support.broker_connection() as connection:
        for prefix in (own, neighbour):
            Topology(prefix).declare(connection)
    return own, neighbour


def test_the_clean_up_deletes_its_prefix_and_leaves_the_neighbours(
    two_prefixes: tuple[str, str],
) -> None:
    own, neighbour = two_prefixes
    url = get_settings().broker_url

    removed = clean(url, own)

    assert f"{own}.inventory" in removed.queues and f"{own}.failed" in removed.queues
    assert {own, f"{own}.dlx"} <= set(removed.exchanges)
    assert not exists(f"{own}.inventory") and not exists(f"{own}.failed")
    assert exists(f"{neighbour}.inventory"), "a prefix that only starts like ours stays"
    assert all(exists(q) for q in support.work_queue_names()), "the suite's own queues stay"
    # The suite's and the neighbour's queues are in the vhost: the shared delays stay.
    assert removed.kept_delayed

    assert f"{neighbour}.inventory" in clean(url, neighbour).queues
    assert not exists(f"{neighbour}.inventory")


def test_when_amqp_is_refused_rabbitmqctl_deletes_the_queues(
    two_prefixes: tuple[str, str],
) -> None:
    # A broker out of file descriptors accepts no AMQP connection: here, a port where nothing
    # listens, on the same vhost of the machine's node that rabbitmqctl lists and deletes in.
    own, neighbour = two_prefixes
    url = make_url_with_port(get_settings().broker_url, ports.port("nowhere"))

    removed = clean(url, own)

    assert removed.over_ctl and f"{own}.inventory" in removed.queues
    assert not exists(f"{own}.inventory") and exists(f"{neighbour}.inventory")
    assert "queues deleted with rabbitmqctl" in removed.summary()
    clean(get_settings().broker_url, neighbour)


def make_url_with_port(url: str, port: int) -> str:
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    return urlunsplit(parts._replace(netloc=f"{credentials}@127.0.0.1:{port}"))
