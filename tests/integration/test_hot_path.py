"""The hot path counts its statements: each move of a step, and an order's intake, is one.

SQLAlchemy's ``before_cursor_execute`` sees every statement sent; on the autocommit
connections the hot path uses there is no BEGIN or COMMIT besides, so a statement is a round
trip. If a change makes a move cost more, this is where it shows.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, event, select

from hub import bootstrap
from hub.core.schemas import OrderIn
from hub.core.steps import AlreadyDone, BreakerNotClosed, Outcome, Started
from hub.db.engine import autocommit, get_engine, unit_of_work
from hub.db.hot_path import PostgresStepStore, mark_sent
from hub.db.models import BreakerState, IntegrationEvent, Order, OutboxMessage, StepOutcome
from hub.services.intake import accept
from hub.settings import get_settings
from tests.factories import order_payload


@contextmanager
def counting(engine: Engine) -> Iterator[list[str]]:
    """Every statement sent through ``engine`` or its autocommit pool meanwhile."""
    statements: list[str] = []

    def seen(conn: object, cursor: object, statement: str, *args: object) -> None:
        statements.append(statement)

    engines = (engine, autocommit(engine))
    for each in engines:
        event.listen(each, "before_cursor_execute", seen)
    try:
        yield statements
    finally:
        for each in engines:
            event.remove(each, "before_cursor_execute", seen)


def new_order() -> uuid.UUID:
    return accept(
        OrderIn.model_validate(order_payload()), idempotency_key=None, sender="tests"
    ).order_id


def store() -> PostgresStepStore:
    return PostgresStepStore(get_engine(), breaker_window=get_settings().breaker.window)


def test_intake_is_one_statement_and_the_fast_paths_mark_another() -> None:
    order = OrderIn.model_validate(order_payload())
    with counting(get_engine()) as statements:
        accepted = accept(order, idempotency_key="key-1", sender="tests")
    assert len(statements) == 1
    assert accepted.outbox_id is not None

    with counting(get_engine()) as statements:
        mark_sent(get_engine(), accepted.outbox_id)
    assert len(statements) == 1

    with unit_of_work() as session:
        stored = session.get(Order, accepted.order_id)
        outbox = session.get(OutboxMessage, accepted.outbox_id)
        events = session.scalars(
            select(IntegrationEvent.event_type).where(
                IntegrationEvent.order_id == accepted.order_id
            )
        ).all()
        assert stored is not None and [line.sku for line in stored.lines] == [
            "SKU-001",
            "SKU-002",
        ]
        assert sorted(step.step for step in stored.steps) == sorted(
            ["inventory", "fulfillment", "invoice"]
        )
        assert outbox is not None and outbox.sent_at is not None
        assert events == ["order.received", "order.queued"]


def test_a_step_starts_in_one_statement_and_succeeds_in_another() -> None:
    order_id = new_order()
    steps = store()
    with counting(get_engine()) as statements:
        begun = steps.begin(order_id, "inventory", gate_passed=False)
    assert len(statements) == 1
    assert isinstance(begun, Started) and begun.attempt == 1
    assert begun.order.lines[0] == {"sku": "SKU-001", "qty": 2, "unit_price": "19.9000"}

    with counting(get_engine()) as statements:
        closed = steps.succeed(
            order_id, "inventory", attempt=1, outcome=Outcome("R-1", {"id": "R-1"}), seconds=0.1
        )
    assert len(statements) == 1
    assert closed

    begun = steps.begin(order_id, "fulfillment", gate_passed=False)
    assert isinstance(begun, Started) and begun.earlier == {"inventory": "R-1"}
    with unit_of_work() as session:
        order = session.get(Order, order_id)
        assert order is not None and order.status == "processing"


def test_the_last_step_completes_the_order_and_a_succeeded_step_is_not_started_again() -> None:
    order_id = new_order()
    steps = store()
    for step in ("inventory", "fulfillment", "invoice"):
        begun = steps.begin(order_id, step, gate_passed=False)
        assert isinstance(begun, Started)
        steps.succeed(order_id, step, attempt=1, outcome=Outcome(f"{step}-1"), seconds=0.1)

    assert isinstance(steps.begin(order_id, "invoice", gate_passed=False), AlreadyDone)
    with unit_of_work() as session:
        order = session.get(Order, order_id)
        kinds = session.scalars(
            select(IntegrationEvent.event_type)
            .where(IntegrationEvent.order_id == order_id)
            .order_by(IntegrationEvent.seq)
        ).all()
        invoice = session.get(StepOutcome, (order_id, "invoice"))
    assert order is not None and order.status == "completed"
    assert kinds[-2:] == ["order.completed", "step.skipped"]
    assert invoice is not None and invoice.attempts == 1


def test_a_breaker_that_is_not_closed_starts_nothing_until_its_gate_is_passed() -> None:
    order_id = new_order()
    with unit_of_work() as session:
        session.add(BreakerState(system="erp", state="open"))
    steps = store()

    assert isinstance(steps.begin(order_id, "inventory", gate_passed=False), BreakerNotClosed)
    begun = steps.begin(order_id, "inventory", gate_passed=True)
    assert isinstance(begun, Started) and begun.attempt == 1
    # Its success is not the hot path's to count: the breaker must hear of it.
    assert not steps.succeed(order_id, "inventory", attempt=1, outcome=Outcome("R"), seconds=0)


def test_production_wires_the_one_statement_store_on_postgresql() -> None:
    assert isinstance(bootstrap.step_store(get_settings()), PostgresStepStore)
