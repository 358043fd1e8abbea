"""Dead letters from RabbitMQ's failure queue become failure records, or resume a chain."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from hub.broker.publisher import order_chain
from hub.broker.topology import Topology
from hub.core.schemas import OrderIn
from hub.db.engine import unit_of_work
from hub.db.models import Failure, IntegrationEvent, OutboxMessage, StepOutcome
from hub.services import dead_letters
from hub.services.intake import accept_order
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
    order_chain(app, order_id, "inventory").apply_async()
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
