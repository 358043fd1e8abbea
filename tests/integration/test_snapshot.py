"""Reading a snapshot: RabbitMQ's queues nobody has declared, PostgreSQL through a pooled
connection that idled."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from hub.core.registry import REGISTRY
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
    # Every registered step has its queue, an optional step that is off included.
    assert facts.work_queues == {f"nosuchhub.{step}": None for step in REGISTRY.step_names}
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
    monkeypatch.setattr(
        database, "_ORDERS_CAPPED", text("SELECT status, count(*) FROM orders GROUP")
    )

    down = database.read_database(get_settings())

    assert isinstance(down, ServiceDown)
    assert "syntax error" in down.reason
    assert "refused a snapshot query" in down.hint


_SOME_ORDERS = text(
    "INSERT INTO orders (id, sender, external_id, status, customer, ship_to, currency,"
    " pipeline, pipeline_version)"
    " SELECT gen_random_uuid(), 'snap', 'S-' || n, CASE WHEN n <= :received THEN 'received'"
    " ELSE 'completed' END, '{}', '{}', 'EUR', '[\"inventory\"]', 'v1'"
    " FROM generate_series(1, :orders) AS n"
)


def test_orders_by_status_counts_up_to_the_cap_and_estimates_past_it() -> None:
    # 3 received and 37 completed orders, a cap of 10: received is counted, completed (past the
    # cap) is the table's estimated rows (ANALYZE: exactly 40) less the 3 counted.
    with engine.get_engine().begin() as connection:
        connection.execute(text("TRUNCATE orders CASCADE"))
        connection.execute(_SOME_ORDERS, {"orders": 40, "received": 3})
        connection.execute(text("ANALYZE orders"))
    try:
        with engine.get_engine().connect() as connection:
            queries = database.Queries(connection)
            capped = database.orders_by_status(queries, cap=10)
            exact = database.orders_by_status(queries, cap=1000)
    finally:
        with engine.get_engine().begin() as connection:
            connection.execute(text("TRUNCATE orders CASCADE"))

    assert capped == {"received": 3, "completed": 37}
    assert exact == {"received": 3, "completed": 37}
