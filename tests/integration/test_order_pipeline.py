"""Each order keeps the pipeline it was accepted on, and finishes on it; the schema refuses a
status the enums do not have."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from hub import bootstrap
from hub.core.registry import Pipeline
from hub.core.schemas import OrderIn
from hub.core.statuses import OrderStatus
from hub.core.steps import Outcome, Started
from hub.db.engine import unit_of_work
from hub.db.models import Order
from hub.services.intake import accept
from hub.settings import get_settings
from tests.factories import order_payload


def accepted_on(pipeline: Pipeline) -> uuid.UUID:
    order = OrderIn.model_validate(order_payload())
    return accept(order, idempotency_key=None, sender="tests", pipeline=pipeline).order_id


def run(order_id: uuid.UUID, step: str) -> None:
    store = bootstrap.step_store(get_settings())
    begun = store.begin(order_id, step, gate_passed=True)
    assert isinstance(begun, Started)
    store.succeed(order_id, step, attempt=begun.attempt, outcome=Outcome(f"{step}-1"), seconds=0)


def stored(order_id: uuid.UUID) -> Order:
    with unit_of_work() as session:
        order = session.get(Order, order_id)
        assert order is not None
        session.expunge(order)
        return order


def test_an_order_records_its_pipeline_and_completes_after_its_own_last_step() -> None:
    short = Pipeline(("inventory", "fulfillment"))
    order_id = accepted_on(short)

    assert (stored(order_id).pipeline, stored(order_id).pipeline_version) == (
        ["inventory", "fulfillment"],
        short.version,
    )
    run(order_id, "inventory")
    assert stored(order_id).status == OrderStatus.PROCESSING
    run(order_id, "fulfillment")
    assert stored(order_id).status == OrderStatus.COMPLETED


def test_an_order_on_the_full_pipeline_is_not_completed_by_a_middle_step() -> None:
    order_id = accepted_on(get_settings().pipeline)

    run(order_id, "inventory")
    run(order_id, "fulfillment")

    assert stored(order_id).status == OrderStatus.PROCESSING
    assert stored(order_id).pipeline == list(get_settings().pipeline.steps)


def test_the_schema_refuses_a_status_no_enum_has() -> None:
    order_id = accepted_on(get_settings().pipeline)

    with pytest.raises(IntegrityError, match="ck_orders_status"), unit_of_work() as session:
        session.execute(
            text("UPDATE orders SET status = 'complete' WHERE id = :id"), {"id": order_id}
        )
    with pytest.raises(IntegrityError, match="ck_step_outcomes_status"), unit_of_work() as session:
        session.execute(
            text("UPDATE step_outcomes SET status = 'done' WHERE order_id = :id"), {"id": order_id}
        )
