"""The same step delivered twice at the same moment, to two worker processes.

At-least-once delivery makes this happen (a redelivery after a lost ack, a duplicate publish,
a replay racing a retry). Both deliveries may call the system, with the same Idempotency-Key,
so it applies the effect once; the hub counts both attempts, loses no increment, records the
success once, and never calls a succeeded step again.
"""

from __future__ import annotations

import uuid

from sqlalchemy import func, select

from hub import bootstrap
from hub.core.schemas import OrderIn
from hub.db import hot_path
from hub.db.engine import get_engine, unit_of_work
from hub.db.models import IntegrationEvent, StepOutcome
from hub.services.intake import accept
from hub.settings import get_settings
from tests import support
from tests.e2e.conftest import Stack
from tests.e2e.test_flow import assert_exactly_once, wait_completed
from tests.factories import order_payload


def events(order_id: uuid.UUID, kind: str, step: str) -> int:
    with unit_of_work() as session:
        return int(
            session.scalar(
                select(func.count()).where(
                    IntegrationEvent.order_id == order_id,
                    IntegrationEvent.event_type == kind,
                    IntegrationEvent.step == step,
                )
            )
            or 0
        )


def attempts(order_id: uuid.UUID, step: str) -> int:
    with unit_of_work() as session:
        row = session.get(StepOutcome, (order_id, step))
        assert row is not None
        return row.attempts


def test_two_deliveries_at_once_make_one_effect_and_count_both_attempts(stack: Stack) -> None:
    # A slow ERP keeps the first delivery inside its call while the second one starts.
    stack.sandbox.set_faults("erp", latency_ms=3000)
    erp_calls = stack.sandbox.ledger("erp")["calls"]
    accepted = accept(OrderIn.model_validate(order_payload()), idempotency_key=None, sender="tests")
    order_id = accepted.order_id
    assert accepted.outbox_id is not None
    publisher = bootstrap.chain_publisher()

    publisher.publish(order_id, accepted.steps)  # the chain, twice, back to back
    publisher.publish(order_id, accepted.steps)
    # As the intake's fast path does: else the relay publishes the row a third time after its
    # grace, racing the slow first step.
    hot_path.mark_sent(get_engine(), accepted.outbox_id)

    wait_completed([str(order_id)], timeout=60)
    support.wait_for(
        lambda: support.queue_depth(support.work_queue_names()[-1]) == 0,
        timeout=30,
        what="the second chain to drain",
    )
    assert_exactly_once(stack, [str(order_id)])
    # Both deliveries of the slow step ran into the ERP's call at once: two attempts counted,
    # none lost, one success recorded.
    assert stack.sandbox.ledger("erp")["calls"] - erp_calls == 2
    assert attempts(order_id, "inventory") == 2 == events(order_id, "step.started", "inventory")
    assert events(order_id, "step.succeeded", "inventory") == 1
    for step in get_settings().pipeline.steps:
        assert attempts(order_id, step) == events(order_id, "step.started", step)
        assert events(order_id, "step.succeeded", step) == 1

    # Once the order completed, a third delivery calls nothing: the step rule refuses its
    # first step (audited as step.refused) and the chain stops there.
    calls_before = {system: stack.sandbox.ledger(system)["calls"] for system in stack.sandbox.urls}
    first = get_settings().pipeline.steps[0]
    refused_before = events(order_id, "step.refused", first)
    publisher.publish(order_id, accepted.steps)
    support.wait_for(
        lambda: events(order_id, "step.refused", first) > refused_before,
        timeout=60,
        what="the third delivery to be refused",
    )
    calls_after = {system: stack.sandbox.ledger(system)["calls"] for system in stack.sandbox.urls}
    assert calls_after == calls_before
    assert_exactly_once(stack, [str(order_id)])
