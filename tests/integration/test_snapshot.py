"""Reading RabbitMQ for a snapshot copes with queues nobody has declared."""

from __future__ import annotations

from hub.observability.snapshot.broker import read_broker
from hub.observability.snapshot.facts import BrokerFacts
from hub.settings import get_settings


def test_queues_that_do_not_exist_read_as_missing_and_the_rest_still_reads() -> None:
    undeclared = get_settings().model_copy(update={"queue_prefix": "nosuchhub"})

    facts = read_broker(undeclared)

    assert isinstance(facts, BrokerFacts)
    assert facts.work_queues == {
        "nosuchhub.inventory": None,
        "nosuchhub.fulfillment": None,
        "nosuchhub.invoice": None,
    }
    assert facts.failure_queue is None


def test_our_declared_queues_read_their_depth() -> None:
    facts = read_broker(get_settings())

    assert isinstance(facts, BrokerFacts)
    assert set(facts.work_queues.values()) == {0}
    assert facts.failure_queue == 0
