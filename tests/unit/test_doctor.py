"""``hub doctor``'s judgements on what the broker and the workers answered."""

from __future__ import annotations

from hub.observability import doctor

MINE = {"version": "1.2.0", "settings": {"HUB_QUEUE_PREFIX": "hub", "HUB_BREAKER": "{}"}}


def test_the_default_vhost_is_shared_and_a_named_one_is_not() -> None:
    # The default vhost is advice (exit 0): the quick start's defaults pass doctor.
    assert [(p.check, p.severity) for p in doctor.check_vhost("amqp://u:p@h:5672//")] == [
        ("vhost", "advice")
    ]
    assert doctor.check_vhost("amqp://u:p@h:5672/hub") == []
    assert doctor.check_vhost("amqp://u:p@a:5672/hub;amqp://u:p@b:5672/hub") == []


def test_a_worker_consuming_other_queues_means_a_shared_vhost() -> None:
    replies = {
        "w1@a": [{"name": "hub.inventory"}],
        "billing@b": [{"name": "invoices"}, {"name": "celery"}],
    }

    found = doctor.check_neighbours(replies, {"hub.inventory"})

    assert len(found) == 1 and "billing@b consumes celery, invoices" in found[0].found


def test_workers_on_another_version_or_settings_are_named() -> None:
    replies = {
        "w1@a": MINE,
        "w2@b": {**MINE, "version": "1.1.0"},
        "w3@c": {**MINE, "settings": {**MINE["settings"], "HUB_BREAKER": '{"threshold": 9}'}},
        "w4@d": None,  # no answer to the question: an older hub
    }

    found = doctor.check_processes(MINE, replies, workers_seen=True)

    assert [(p.check, p.found.split()[1]) for p in found] == [
        ("version", "w2@b"),
        ("settings", "w3@c"),
        ("version", "w4@d"),
    ]
    assert "HUB_BREAKER" in found[1].found


def test_no_worker_at_all_is_a_problem() -> None:
    assert [p.check for p in doctor.check_processes(MINE, {}, workers_seen=False)] == ["workers"]
