"""A step's start that waited for its step row while a cancel held it sees the cancel.

The race the chaos slice caught once: the start's statement takes its snapshot (the order
``received``), then waits for the step row, which a cancel holds while it decides; the cancel
ends the order and commits; the start must not then start the step of a cancelled order, or the
reservation it makes is never undone. Here the cancel's hold is a transaction of the test's own,
taken the way ``hub.db.compensation_store.locked`` takes it (step rows, then the order).
"""

from __future__ import annotations

import uuid
from concurrent.futures import Future, ThreadPoolExecutor

from sqlalchemy import select, text

from hub.core.schemas import OrderIn
from hub.core.steps import Begun, Refused
from hub.db.engine import get_engine, unit_of_work
from hub.db.hot_path import START_STEP, PostgresStepStore
from hub.db.models import IntegrationEvent, Order, StepOutcome
from hub.services.intake import accept
from hub.settings import get_settings
from tests import support
from tests.factories import order_payload


def new_order() -> uuid.UUID:
    return accept(
        OrderIn.model_validate(order_payload()), idempotency_key=None, sender="tests"
    ).order_id


def start_waits_for_a_lock() -> bool:
    with get_engine().connect() as connection:
        waiting = connection.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND query LIKE :start"
            ),
            {"start": f"EXECUTE {START_STEP.name}(%"},
        ).scalar_one()
    return bool(waiting)


def test_a_start_that_waited_for_a_cancel_refuses_the_step() -> None:
    order_id = new_order()
    store = PostgresStepStore(get_engine(), breaker_window=get_settings().breaker.window)
    cancel = get_engine().connect()
    transaction = cancel.begin()
    try:
        # The cancel's hold: the order's step rows, then the order.
        cancel.execute(
            text("SELECT step FROM step_outcomes WHERE order_id = :id ORDER BY step FOR UPDATE"),
            {"id": str(order_id)},
        )
        cancel.execute(
            text("SELECT status FROM orders WHERE id = :id FOR UPDATE"), {"id": str(order_id)}
        )
        with ThreadPoolExecutor(1) as pool:
            started: Future[Begun] = pool.submit(
                store.begin, order_id, "inventory", gate_passed=False
            )
            # Its snapshot is taken (the order received) and it waits for the step row.
            support.wait_for(start_waits_for_a_lock, timeout=30, what="the start to wait")
            cancel.execute(
                text("UPDATE orders SET status = 'cancelled' WHERE id = :id"),
                {"id": str(order_id)},
            )
            transaction.commit()
            begun = started.result(timeout=30)
    finally:
        cancel.close()

    assert begun == Refused(reason="order is cancelled", order_status="cancelled")
    with unit_of_work() as session:
        step = session.get(StepOutcome, (order_id, "inventory"))
        assert step is not None and (step.status, step.attempts) == ("pending", 0)
        events = session.scalars(
            select(IntegrationEvent.event_type).where(IntegrationEvent.order_id == order_id)
        ).all()
        assert "step.started" not in events


def test_a_start_that_waited_for_nothing_but_a_lock_still_starts() -> None:
    order_id = new_order()
    store = PostgresStepStore(get_engine(), breaker_window=get_settings().breaker.window)
    holder = get_engine().connect()
    transaction = holder.begin()
    try:
        holder.execute(
            text("SELECT step FROM step_outcomes WHERE order_id = :id FOR UPDATE"),
            {"id": str(order_id)},
        )
        with ThreadPoolExecutor(1) as pool:
            started: Future[Begun] = pool.submit(
                store.begin, order_id, "inventory", gate_passed=False
            )
            support.wait_for(start_waits_for_a_lock, timeout=30, what="the start to wait")
            transaction.rollback()  # a cancel that found the order completed, say
            begun = started.result(timeout=30)
    finally:
        holder.close()

    assert not isinstance(begun, Refused)
    with unit_of_work() as session:
        step = session.get(StepOutcome, (order_id, "inventory"))
        assert step is not None and (step.status, step.attempts) == ("running", 1)
        order = session.get(Order, order_id)
        assert order is not None and order.status == "processing"
