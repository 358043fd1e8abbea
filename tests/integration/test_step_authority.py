"""The order's records decide whether a step runs, in both step stores (issue: a Flower
``async-apply`` shipped a discarded order). Each refusal starts nothing, spends no attempt and,
once told to the store, leaves a ``step.refused`` audit row saying what was asked."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select, update

from hub.core.ports.store import StepStore
from hub.core.schemas import OrderIn
from hub.core.statuses import OrderStatus
from hub.core.step_rule import RUNNABLE_ORDER_STATUSES
from hub.core.steps import Outcome, Refused, Started
from hub.db.engine import get_engine, unit_of_work
from hub.db.hot_path import PostgresStepStore
from hub.db.models import IntegrationEvent, Order, StepOutcome
from hub.db.step_store import SqlStepStore
from hub.services.intake import accept
from hub.settings import get_settings
from tests.factories import order_payload


def _stores() -> dict[str, StepStore]:
    window = get_settings().breaker.window
    return {
        "one statement (PostgreSQL)": PostgresStepStore(get_engine(), breaker_window=window),
        "ORM (trial mode's)": SqlStepStore(breaker_window=window),
    }


@pytest.fixture(params=["one statement (PostgreSQL)", "ORM (trial mode's)"])
def steps(request: pytest.FixtureRequest) -> StepStore:
    return _stores()[request.param]


def new_order() -> uuid.UUID:
    payload = OrderIn.model_validate(order_payload())
    return accept(payload, idempotency_key=None, sender="tests").order_id


def set_status(order_id: uuid.UUID, status: str) -> None:
    with unit_of_work() as session:
        session.execute(update(Order).where(Order.id == order_id).values(status=status))


def attempts(order_id: uuid.UUID) -> dict[str, int]:
    with unit_of_work() as session:
        rows = session.execute(
            select(StepOutcome.step, StepOutcome.attempts).where(StepOutcome.order_id == order_id)
        )
        return {step: n for step, n in rows}


def test_a_step_before_its_predecessor_is_refused(steps: StepStore) -> None:
    order_id = new_order()
    begun = steps.begin(order_id, "fulfillment", gate_passed=False)
    assert begun == Refused(reason="out of order: inventory not succeeded", order_status="received")
    assert attempts(order_id) == {"inventory": 0, "fulfillment": 0, "invoice": 0}


# Every status outside the runnable two (cancelled and closed will join them).
@pytest.mark.parametrize("status", sorted(set(OrderStatus) - set(RUNNABLE_ORDER_STATUSES)))
def test_an_order_that_is_not_open_runs_no_step(steps: StepStore, status: str) -> None:
    order_id = new_order()
    begun = steps.begin(order_id, "inventory", gate_passed=False)
    assert isinstance(begun, Started)
    steps.succeed(order_id, "inventory", attempt=1, outcome=Outcome("R-1"), seconds=0.0)
    set_status(order_id, status)

    # Even past the breaker's gate: the rule is not the breaker's to waive.
    for gate_passed in (False, True):
        begun = steps.begin(order_id, "fulfillment", gate_passed=gate_passed)
        assert begun == Refused(reason=f"order is {status}", order_status=status)
    assert attempts(order_id)["fulfillment"] == 0


def inventory_runs_again_and_no_later_step(steps: StepStore, order_id: uuid.UUID) -> None:
    """A cancelling order's started inventory step runs again (its second attempt) and
    succeeds; the step after it is refused, even past the breaker's gate."""
    again = steps.begin(order_id, "inventory", gate_passed=False)

    assert isinstance(again, Started) and again.attempt == 2
    steps.succeed(order_id, "inventory", attempt=2, outcome=Outcome("R-1"), seconds=0.0)
    begun = steps.begin(order_id, "fulfillment", gate_passed=True)
    assert begun == Refused(reason="order is cancelling", order_status="cancelling")
    assert attempts(order_id) == {"inventory": 2, "fulfillment": 0, "invoice": 0}


def test_a_cancelling_orders_step_in_flight_runs_again_and_no_other(steps: StepStore) -> None:
    # The step was started, then its worker was lost before it recorded the answer (killed, or
    # its database away); the order was cancelled meanwhile. The redelivery finishes the step,
    # so its effect's id is known and its compensation can undo it; no later step starts.
    order_id = new_order()
    assert isinstance(steps.begin(order_id, "inventory", gate_passed=False), Started)
    set_status(order_id, "cancelling")

    inventory_runs_again_and_no_later_step(steps, order_id)
    with unit_of_work() as session:
        order = session.get(Order, order_id)
        assert order is not None and order.status == "cancelling"  # not completed by it


def test_a_cancelling_orders_step_with_a_retry_to_come_is_retried_and_no_other(
    steps: StepStore,
) -> None:
    # The attempt timed out after the ERP had made the reservation, so the step is in error
    # with a retry planned; the order was cancelled meanwhile. The retry (same key) must run:
    # it is the only way to learn the reservation's id, so that it can be released.
    order_id = new_order()
    assert isinstance(steps.begin(order_id, "inventory", gate_passed=False), Started)
    with unit_of_work() as session:
        session.execute(
            update(StepOutcome)
            .where(StepOutcome.order_id == order_id, StepOutcome.step == "inventory")
            .values(status="error")
        )
    set_status(order_id, "cancelling")

    inventory_runs_again_and_no_later_step(steps, order_id)


def test_a_refusal_is_audited_with_what_was_asked(steps: StepStore) -> None:
    order_id = new_order()
    set_status(order_id, "failed")
    begun = steps.begin(order_id, "inventory", gate_passed=False)
    assert isinstance(begun, Refused)
    asked = {"task": "hub.step.inventory", "task_id": "t-1", "origin": "gen1@flower"}
    steps.refuse(order_id, "inventory", refused=begun, asked=asked)

    with unit_of_work() as session:
        event = session.scalars(
            select(IntegrationEvent).where(
                IntegrationEvent.order_id == order_id,
                IntegrationEvent.event_type == "step.refused",
            )
        ).one()
        assert (event.step, event.status) == ("inventory", "error")
        assert event.detail == {
            "reason": "order is failed",
            "order_status": "failed",
            "asked": asked,
        }


def test_a_refused_message_claiming_nul_in_its_origin_is_audited_without_it(
    steps: StepStore,
) -> None:
    # What a message says of itself is whatever its publisher wrote (a broker user may write
    # NUL, which jsonb refuses): the refusal is still recorded, the NUL removed.
    order_id = new_order()
    set_status(order_id, "failed")
    begun = steps.begin(order_id, "inventory", gate_passed=False)
    assert isinstance(begun, Refused)
    steps.refuse(order_id, "inventory", refused=begun, asked={"origin": "gen\x001@evil"})

    with unit_of_work() as session:
        event = session.scalars(
            select(IntegrationEvent).where(
                IntegrationEvent.order_id == order_id,
                IntegrationEvent.event_type == "step.refused",
            )
        ).one()
        assert event.detail["asked"] == {"origin": "gen1@evil"}
