"""The hot path counts its statements: each move of a step (start, success, failure with or
without its retry, refusal, skip), a breaker's count of a call, and an order's intake, is one.

SQLAlchemy's ``before_cursor_execute`` sees every statement sent; on the autocommit
connections the hot path uses there is no BEGIN or COMMIT besides, so a statement is a round
trip. If a change makes a move cost more, this is where it shows.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from sqlalchemy import Engine, event, select, update

from hub import bootstrap
from hub.core.errors import TransientError
from hub.core.ports.downstream import Line
from hub.core.schemas import OrderIn
from hub.core.steps import AlreadyDone, BreakerNotClosed, Outcome, Refused, RetryPlan, Started
from hub.db.engine import autocommit, get_engine, unit_of_work
from hub.db.hot_path import PostgresStepStore, count_call, mark_sent
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
    assert begun.order.lines[0] == Line(sku="SKU-001", qty=2, unit_price="19.9000")

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

    # A redelivered link of a chain still under way is skipped, its stored result passed on.
    with unit_of_work() as session:
        session.execute(update(Order).where(Order.id == order_id).values(status="processing"))
    assert isinstance(steps.begin(order_id, "invoice", gate_passed=False), AlreadyDone)
    with unit_of_work() as session:
        session.execute(update(Order).where(Order.id == order_id).values(status="completed"))
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


def events_of(order_id: uuid.UUID) -> list[str]:
    with unit_of_work() as session:
        return list(
            session.scalars(
                select(IntegrationEvent.event_type)
                .where(IntegrationEvent.order_id == order_id)
                .order_by(IntegrationEvent.seq)
            )
        )


def test_a_failure_with_its_retry_is_one_statement_and_without_one_too() -> None:
    order_id = new_order()
    steps = store()
    assert isinstance(steps.begin(order_id, "inventory", gate_passed=False), Started)
    error = TransientError(system="erp", message="503 from the ERP", status=503)

    with counting(get_engine()) as statements:
        steps.fail(
            order_id,
            "inventory",
            attempt=1,
            error=error,
            retry=RetryPlan(delay_s=2, backoff_ceiling_s=2.0),
        )
    assert len(statements) == 1
    with counting(get_engine()) as statements:
        steps.fail(order_id, "inventory", attempt=1, error=error, retry=None)
    assert len(statements) == 1

    with unit_of_work() as session:
        row = session.get(StepOutcome, (order_id, "inventory"))
        assert row is not None and (row.status, row.last_error) == ("error", str(error))
    assert events_of(order_id)[-3:] == ["step.failed", "step.retry_scheduled", "step.failed"]


def test_a_refusal_and_a_skip_are_one_statement_each_after_the_start() -> None:
    order_id = new_order()
    steps = store()

    with counting(get_engine()) as statements:
        steps.refuse(
            order_id,
            "invoice",
            refused=Refused(reason="out of pipeline order", order_status="received"),
            asked={"step": "invoice"},
        )
    assert len(statements) == 1
    assert events_of(order_id)[-1] == "step.refused"

    assert isinstance(steps.begin(order_id, "inventory", gate_passed=False), Started)
    steps.succeed(order_id, "inventory", attempt=1, outcome=Outcome("R-1"), seconds=0.1)
    with counting(get_engine()) as statements:
        assert isinstance(steps.begin(order_id, "inventory", gate_passed=False), AlreadyDone)
    assert len(statements) == 2, "the start that finds it done, then the skip's audit row"
    assert events_of(order_id)[-1] == "step.skipped"


def test_counting_a_call_in_a_live_window_is_one_statement() -> None:
    with unit_of_work() as session:
        session.add(BreakerState(system="erp", state="closed", window_started_at=datetime.now(UTC)))
    window = get_settings().breaker.window

    with counting(get_engine()) as statements:
        counts = count_call(get_engine(), "erp", failed=True, retried=True, window=window)
    assert len(statements) == 1
    assert counts == (1, 1, 1)
    with counting(get_engine()) as statements:
        assert count_call(get_engine(), "erp", failed=False, retried=False, window=window) == (
            2,
            1,
            1,
        )
    assert len(statements) == 1


def test_production_wires_the_one_statement_store_on_postgresql() -> None:
    assert isinstance(bootstrap.step_store(get_settings()), PostgresStepStore)
