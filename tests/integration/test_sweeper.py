"""The sweeper re-drives chains that stopped without a dead letter, and only those."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime

from sqlalchemy import select, text

from hub.core.registry import REGISTRY
from hub.core.schemas import OrderIn
from hub.db import audit
from hub.db.engine import get_engine, unit_of_work
from hub.db.models import Failure, IntegrationEvent, Order, OutboxMessage, StepOutcome
from hub.services import sweeper
from hub.services.intake import accept_order
from tests.factories import order_payload

AFTER = 60.0


def order_at(
    step: str, *, last: str = audit.STEP_SUCCEEDED, ago: float, **detail: object
) -> uuid.UUID:
    """An order whose chain got to ``step`` (earlier steps succeeded, outbox sent) and whose
    last audit event, ``last``, happened ``ago`` seconds back."""
    with unit_of_work() as session:
        accepted = accept_order(
            session, OrderIn.model_validate(order_payload()), idempotency_key=None, sender="t"
        )
        order_id = accepted.order_id
        session.get_one(Order, order_id).status = "processing"
        for outbox in session.scalars(select(OutboxMessage)):
            outbox.sent_at = datetime.now(UTC)
        for row in session.scalars(select(StepOutcome).where(StepOutcome.order_id == order_id)):
            if REGISTRY.step_names.index(row.step) < REGISTRY.step_names.index(step):
                row.status = "succeeded"
        audit.record(session, last, order_id=order_id, step=step, **detail)
    with get_engine().begin() as connection:
        connection.execute(
            text(
                "UPDATE integration_events SET created_at = now() - make_interval(secs => :ago)"
                " WHERE order_id = :id"
            ),
            {"ago": ago, "id": order_id},
        )
    return order_id


def redriven() -> list[tuple[uuid.UUID, str]]:
    with unit_of_work() as session:
        rows = session.execute(
            select(OutboxMessage.order_id, OutboxMessage.start_step).where(
                OutboxMessage.sent_at.is_(None)
            )
        ).all()
    return [(order_id, step) for order_id, step in rows]


def sweep(**overrides: object) -> sweeper.Swept:
    args: dict[str, object] = {"after": AFTER, "tries": 3, "limit": 100} | overrides
    return sweeper.sweep_once(**args)  # type: ignore[arg-type]


def test_a_chain_idle_past_the_bound_is_redriven_from_the_step_where_it_stopped() -> None:
    stalled = order_at("fulfillment", ago=AFTER + 5)

    assert sweep() == sweeper.Swept(redriven=1)

    assert redriven() == [(stalled, "fulfillment")]
    with unit_of_work() as session:
        event = session.scalars(
            select(IntegrationEvent).where(IntegrationEvent.event_type == audit.CHAIN_REDRIVEN)
        ).one()
    assert event.step == "fulfillment" and event.detail["last_event"] == audit.STEP_SUCCEEDED
    assert "no progress" in event.detail["reason"]
    assert sweep() == sweeper.Swept(), "its outbox row is in flight now: not swept again"


def test_a_retry_parked_in_rabbitmq_is_waited_for_as_long_as_it_announced() -> None:
    order_at("invoice", last=audit.RETRY_SCHEDULED, ago=AFTER + 5, delay_s=300)
    order_at("inventory", last=audit.STEP_DEFERRED, ago=AFTER + 5, delay_s=30)
    due = order_at("fulfillment", last=audit.RETRY_SCHEDULED, ago=AFTER + 40, delay_s=30)

    assert sweep() == sweeper.Swept(redriven=1)
    assert redriven() == [(due, "fulfillment")]


def test_young_chains_settled_orders_and_unsent_outbox_rows_are_left_alone() -> None:
    order_at("fulfillment", ago=AFTER - 10)
    done = order_at("invoice", ago=AFTER + 100)
    unsent = order_at("inventory", last=audit.RECEIVED, ago=AFTER + 100)
    with unit_of_work() as session:
        session.get_one(Order, done).status = "completed"
        session.add(OutboxMessage(order_id=unsent, start_step="inventory"))

    assert sweep() == sweeper.Swept()


def test_a_step_whose_queue_has_messages_waiting_is_left_alone() -> None:
    order_at("fulfillment", ago=AFTER + 5)
    order_at("invoice", ago=AFTER + 5)

    swept = sweep(waiting=lambda step: 7 if step == "fulfillment" else 0)

    assert swept == sweeper.Swept(redriven=1)
    assert [step for _, step in redriven()] == ["invoice"]


def test_after_the_last_try_the_order_becomes_a_stalled_failure() -> None:
    order_id = order_at("fulfillment", ago=AFTER + 5)
    for _ in range(2):
        assert sweep(tries=2) == sweeper.Swept(redriven=1)
        with get_engine().begin() as connection:  # published, and again nothing happened
            connection.execute(text("UPDATE outbox SET sent_at = now()"))
            connection.execute(
                text("UPDATE integration_events SET created_at = created_at - interval '1 hour'")
            )

    assert sweep(tries=2) == sweeper.Swept(gave_up=1)

    with unit_of_work() as session:
        failure = session.scalars(select(Failure)).one()
        order = session.get_one(Order, order_id)
    assert (failure.error_kind, failure.step, failure.state) == ("stalled", "fulfillment", "open")
    assert order.status == "failed"
    assert sweep(tries=2) == sweeper.Swept()


def test_two_sweepers_at_once_redrive_each_order_once() -> None:
    for _ in range(20):
        order_at("fulfillment", ago=AFTER + 5)
    start = threading.Barrier(4)
    results: list[sweeper.Swept] = []

    def run() -> None:
        start.wait()
        results.append(sweep(limit=7))

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(r.redriven for r in results) <= 20
    while (more := sweep()).redriven:
        results.append(more)
    assert sum(r.redriven for r in results) == 20
    assert len(redriven()) == 20 and len(set(redriven())) == 20


def cancelling_at(*, ago: float, undone: tuple[str, ...] = ()) -> uuid.UUID:
    """A cancelling order whose reservation and shipment succeeded, the compensations of
    ``undone`` done, and whose chain of compensations was then lost ``ago`` seconds back."""
    order_id = order_at("invoice", last=audit.CANCEL_REQUESTED, ago=ago)
    with unit_of_work() as session:
        session.get_one(Order, order_id).status = "cancelling"
        for step in undone:
            session.get_one(StepOutcome, (order_id, step)).compensation_status = "succeeded"
    return order_id


def unsent() -> list[tuple[uuid.UUID, str, str]]:
    with unit_of_work() as session:
        rows = session.execute(
            select(OutboxMessage.order_id, OutboxMessage.start_step, OutboxMessage.kind).where(
                OutboxMessage.sent_at.is_(None)
            )
        ).all()
    return [(order_id, step, kind) for order_id, step, kind in rows]


def test_a_lost_chain_of_compensations_is_redriven_from_the_last_step() -> None:
    stalled = cancelling_at(ago=AFTER + 5, undone=("fulfillment",))
    with unit_of_work() as session:
        last = session.get_one(Order, stalled).pipeline[-1]

    assert sweep() == sweeper.Swept(redriven=1)

    # Queued as a cancel queues them; the store passes the shipment's, undone already.
    assert unsent() == [(stalled, last, "compensate")]
    with unit_of_work() as session:
        event = session.scalars(
            select(IntegrationEvent).where(IntegrationEvent.event_type == audit.CHAIN_REDRIVEN)
        ).one()
    assert event.step == "inventory" and event.detail["compensating"] is True
    assert "compensations re-driven" in event.detail["reason"]
    assert sweep() == sweeper.Swept(), "its outbox row is in flight now: not swept again"


def test_compensations_waiting_for_a_step_in_flight_or_the_operator_are_left_alone() -> None:
    young = cancelling_at(ago=AFTER - 10)
    waiting = cancelling_at(ago=AFTER + 5)
    failed = cancelling_at(ago=AFTER + 5)
    with unit_of_work() as session:
        session.get_one(StepOutcome, (waiting, "invoice")).status = "running"
        session.get_one(StepOutcome, (failed, "fulfillment")).compensation_status = "failed"
    assert young and sweep() == sweeper.Swept()
    # Its message may be in any queue from the order's last step back to the next one to undo
    # (the invoice, undone first): one waiting in an earlier step's queue is not its own.
    stranded = cancelling_at(ago=AFTER + 5)
    assert sweep(waiting=lambda step: 3 if step == "invoice" else 0) == sweeper.Swept()
    assert sweep(waiting=lambda step: 3 if step == "inventory" else 0) == sweeper.Swept(redriven=1)
    assert [order_id for order_id, _, _ in unsent()] == [stranded]


def test_compensations_that_stay_stuck_become_a_compensation_failure_of_a_cancelling_order() -> (
    None
):
    order_id = cancelling_at(ago=AFTER + 5)
    for _ in range(2):
        assert sweep(tries=2) == sweeper.Swept(redriven=1)
        with get_engine().begin() as connection:  # published, and again nothing happened
            connection.execute(text("UPDATE outbox SET sent_at = now()"))
            connection.execute(
                text("UPDATE integration_events SET created_at = created_at - interval '1 hour'")
            )

    assert sweep(tries=2) == sweeper.Swept(gave_up=1)

    with unit_of_work() as session:
        failure = session.scalars(select(Failure)).one()
        order = session.get_one(Order, order_id)
        step = session.get_one(StepOutcome, (order_id, "fulfillment"))
    assert (failure.error_kind, failure.error_code, failure.step) == (
        "compensation",
        "stalled",
        "fulfillment",
    )
    assert order.status == "cancelling" and step.compensation_status == "failed"
    assert sweep(tries=2) == sweeper.Swept(), "the operator's now: replay or close"
