"""Reading a snapshot: RabbitMQ's queues nobody has declared, PostgreSQL through a pooled
connection that idled."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from hub.db import engine
from hub.observability.health import ServiceDown
from hub.observability.snapshot import database
from hub.observability.snapshot.broker import read_broker
from hub.observability.snapshot.facts import BrokerFacts, DatabaseFacts
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


def test_a_pooled_connection_pinged_after_idling_still_reads_the_database(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The idle ping must leave no transaction open: the snapshot's first statement is
    # SET TRANSACTION, which PostgreSQL refuses once a query ran in the transaction.
    monkeypatch.setattr(engine, "IDLE_BEFORE_PING", 0.0)
    settings = get_settings()
    assert isinstance(database.read_database(settings), DatabaseFacts)

    again = database.read_database(settings)

    assert isinstance(again, DatabaseFacts), again


def test_a_query_the_database_refuses_is_reported_as_such_not_as_a_database_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(database, "_ORDERS", text("SELECT status, count(*) FROM orders GROUP"))

    down = database.read_database(get_settings())

    assert isinstance(down, ServiceDown)
    assert "syntax error" in down.reason
    assert "refused a snapshot query" in down.hint
