"""Dead letters from RabbitMQ's failure queue become failure records, or resume a chain."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select

from hub.broker.publisher import order_chain
from hub.broker.topology import Topology
from hub.core.schemas import OrderIn
from hub.db.engine import unit_of_work
from hub.db.failures import FailureReport, record_failure
from hub.db.models import Failure, IntegrationEvent, Order, OutboxMessage, StepOutcome
from hub.services import dead_letters
from hub.services.intake import accept_order
from hub.services.replay import replay_one
from hub.settings import get_settings
from tasks.app import app
from tests import support
from tests.factories import order_payload


def new_order() -> uuid.UUID:
    with unit_of_work() as session:
        accepted = accept_order(
            session, OrderIn.model_validate(order_payload()), idempotency_key=None, sender="tests"
        )
    return accepted.order_id


def reject_one_from(queue_name: str) -> None:
    """Take a message off a work queue and reject it without requeue, as a worker would."""
    topology = Topology(get_settings().queue_prefix)
    step = queue_name.rsplit(".", 1)[1]
    with support.broker_connection() as connection:
        bound = topology.work_queue(step).bind(connection.default_channel)
        support.wait_for(
            lambda: support.queue_depth(queue_name) == 1,
            timeout=5,
            what=f"a message in {queue_name}",
        )
        message = bound.get(no_ack=False)
        assert message is not None
        message.reject(requeue=False)


def drain() -> int:
    topology = Topology(get_settings().queue_prefix)
    with support.broker_connection() as connection:
        return dead_letters.drain(connection, topology.failure_queue())


def test_a_rejected_step_message_is_dead_lettered_and_recorded_as_a_crash() -> None:
    order_id = new_order()
    order_chain(app, order_id, ("inventory", "fulfillment", "invoice")).apply_async()
    reject_one_from(support.work_queue_names()[0])

    support.wait_for(
        lambda: support.queue_depth(f"{get_settings().queue_prefix}.failed") == 1,
        timeout=5,
        what="the dead letter in the failure queue",
    )
    assert drain() == 1

    with unit_of_work() as session:
        failure = session.scalars(select(Failure)).one()
        kinds = set(session.scalars(select(IntegrationEvent.event_type)))
    assert (failure.order_id, failure.step, failure.error_kind) == (
        order_id,
        "inventory",
        "crashed",
    )
    assert "rejected" in failure.message
    assert {"order.failed", "step.dead_lettered"} <= kinds
    assert support.queue_depth(f"{get_settings().queue_prefix}.failed") == 0, "acked"


def test_a_dead_letter_of_a_step_that_succeeded_resumes_the_chain_at_the_next_step() -> None:
    order_id = new_order()
    with unit_of_work() as session:
        step = session.get(StepOutcome, (order_id, "inventory"))
        assert step is not None
        step.status = "succeeded"
    letter = dead_letters.DeadLetter(
        order_id=order_id, step="inventory", reason="rejected", deliveries=1, queue="q"
    )

    dead_letters.record_dead_letter(letter)
    dead_letters.record_dead_letter(letter)  # a second copy queues nothing more

    with unit_of_work() as session:
        resumed = session.scalars(
            select(OutboxMessage.start_step).where(OutboxMessage.order_id == order_id)
        ).all()
        failures = session.scalars(select(Failure)).all()
    assert sorted(resumed) == ["fulfillment", "inventory"]
    assert failures == []


def test_a_dead_letter_that_is_not_a_hub_step_is_kept_on_record_unexecuted() -> None:
    assert dead_letters.parse_dead_letter({"task": "evil.task"}, b"[[1], {}, {}]") is None
    assert dead_letters.parse_dead_letter({"task": "hub.step.inventory"}, b"not json") is None
    letter = dead_letters.parse_dead_letter(
        {
            "task": "hub.step.invoice",
            "x-first-death-reason": "delivery_limit",
            "x-first-death-queue": "hub.invoice",
        },
        f'[["{uuid.UUID(int=7)}"], {{}}, {{}}]'.encode(),
    )
    assert letter is not None
    assert (letter.step, letter.reason, letter.queue) == (
        "invoice",
        "delivery_limit",
        "hub.invoice",
    )
    assert dead_letters.unrecorded_failure(letter).kind == "poison"


def test_a_crashed_compensation_is_a_compensation_failure_the_order_still_cancelling() -> None:
    order_id = new_order()
    with unit_of_work() as session:
        for step in ("inventory", "fulfillment"):
            row = session.get(StepOutcome, (order_id, step))
            assert row is not None
            row.status, row.downstream_id = "succeeded", f"{step}-id"
        order = session.get(Order, order_id)
        assert order is not None
        order.status = "cancelling"
    order_chain(app, order_id, ("fulfillment",), compensating=True).apply_async()
    reject_one_from(support.work_queue_names()[1])
    support.wait_for(
        lambda: support.queue_depth(f"{get_settings().queue_prefix}.failed") == 1,
        timeout=5,
        what="the dead letter in the failure queue",
    )

    assert drain() == 1

    with unit_of_work() as session:
        failure = session.scalars(select(Failure)).one()
        row = session.get(StepOutcome, (order_id, "fulfillment"))
        order = session.get(Order, order_id)
        dead = session.scalars(
            select(IntegrationEvent).where(IntegrationEvent.event_type == "step.dead_lettered")
        ).one()
    assert (failure.step, failure.error_kind, failure.state) == (
        "fulfillment",
        "compensation",
        "open",
    )
    assert row is not None and row.compensation_status == "failed"
    assert order is not None and order.status == "cancelling"
    assert dead.detail["compensating"] is True


def test_a_replay_that_came_before_its_failures_dead_letter_records_no_crash() -> None:
    # The hub records a permanent failure, then rejects the message; the operator replays it
    # before the relay drains the dead letter.
    order_id = new_order()
    with unit_of_work() as session:
        failure = record_failure(
            session,
            FailureReport(
                order_id=order_id,
                step="inventory",
                kind="permanent",
                attempts=1,
                message="409 out_of_stock",
            ),
        )
        assert failure is not None
        failure_id = failure.id
    order_chain(app, order_id, ("inventory", "fulfillment", "invoice")).apply_async()
    reject_one_from(support.work_queue_names()[0])
    support.wait_for(
        lambda: support.queue_depth(f"{get_settings().queue_prefix}.failed") == 1,
        timeout=5,
        what="the dead letter in the failure queue",
    )
    with unit_of_work() as session:
        replay_one(session, failure_id, operator="ops", reason="restocked")

    assert drain() == 1

    with unit_of_work() as session:
        failures = session.scalars(select(Failure)).all()
        lettered = session.scalars(
            select(IntegrationEvent).where(IntegrationEvent.event_type == "step.dead_lettered")
        ).all()
        replayed_at = session.get_one(Failure, failure_id).resolved_at
    assert [(f.id, f.state) for f in failures] == [(failure_id, "replayed")]
    assert len(lettered) == 1

    # A task of the replay that then crashed is still recorded.
    assert replayed_at is not None
    later = dead_letters.DeadLetter(
        order_id=order_id,
        step="inventory",
        reason="rejected",
        deliveries=1,
        queue="q",
        died_at=replayed_at + timedelta(seconds=5),
    )
    dead_letters.record_dead_letter(later)
    with unit_of_work() as session:
        kinds = sorted(f.error_kind for f in session.scalars(select(Failure)))
    assert kinds == ["crashed", "permanent"]
