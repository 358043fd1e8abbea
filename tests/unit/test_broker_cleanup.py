"""Which queues and exchanges the session's end deletes: the suite's own, never a neighbour's."""

from __future__ import annotations

from tests.broker_cleanup import choose, is_ours, vhost_of

DELAYED_Q = [f"celery_delayed_{n}" for n in range(28)]
DELAYED_X = [*DELAYED_Q, "celery_delayed_delivery"]


def test_names_of_the_prefix_and_of_prefixes_derived_from_it_are_ours() -> None:
    for name in (
        "hubt6",
        "hubt6.inventory",
        "hubt6.dlx",
        "hubt6.control.pidbox",
        "reply.hubt6.control.pidbox",
        "hubt6-worker1@host.hubt6.control.pidbox",
        "hubt6demo.failed",
    ):
        assert is_ours(name, "hubt6"), name


def test_a_prefix_that_merely_starts_like_ours_is_not_ours() -> None:
    for name in (
        "hubt60.inventory",
        "hubt6x",
        "hubtest.inventory",
        "celery_delayed_3",
        "amq.direct",
    ):
        assert not is_ours(name, "hubt6"), name


def test_the_shared_delayed_topology_goes_only_from_a_vhost_left_empty_of_others() -> None:
    queues = ["hubt6.inventory", "hubt6.failed", *DELAYED_Q]
    exchanges = ["hubt6", "hubt6.dlx", "amq.direct", *DELAYED_X]

    removed, q, x = choose("hubt6", "hubt6", queues, exchanges)

    assert sorted(q) == sorted(queues) and removed.kept_delayed == ""
    assert sorted(x) == sorted(["hubt6", "hubt6.dlx", *DELAYED_X]), "amq.* stay"


def test_the_delayed_topology_stays_beside_another_prefix_or_on_the_default_vhost() -> None:
    queues = ["hubt6.inventory", "hub.inventory", *DELAYED_Q]

    removed, q, x = choose("shared", "hubt6", queues, [*DELAYED_X, "hubt6"])
    assert q == ["hubt6.inventory"] and x == ["hubt6"]
    assert "hub.inventory" in removed.kept_delayed

    removed, q, _ = choose("/", "hubt6", ["hubt6.inventory", *DELAYED_Q], DELAYED_X)
    assert q == ["hubt6.inventory"] and "default vhost" in removed.kept_delayed


def test_the_vhost_is_read_from_the_broker_url() -> None:
    assert vhost_of("amqp://guest:guest@127.0.0.1:5672/hubt6") == "hubt6"
    assert vhost_of("amqp://guest:guest@127.0.0.1:5672//") == "/"
    assert vhost_of("amqp://guest:guest@127.0.0.1:5672") == "/"
    assert vhost_of("amqp://g:g@h:5672/a%2Fb") == "a/b"
