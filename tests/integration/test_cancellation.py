"""Cancelling over HTTP, and the rules of the compensation store, on real PostgreSQL and
RabbitMQ (no worker consuming: the compensations' messages stay in the queues)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from hub.core.amendments import BadAmendment, parse_sets
from hub.core.errors import PermanentError
from hub.core.steps import AlreadyDone, Outcome, Refused, Started, Wait
from hub.db.compensation_store import SqlCompensationRecorder, SqlCompensationStore
from hub.db.engine import unit_of_work
from hub.db.models import Failure, IntegrationEvent, Order, OutboxMessage, StepOutcome
from hub.entrypoints.api import create_api
from hub.services.amendments import FieldAlreadyUsed, amend_order
from hub.services.cancellation import close_order
from tests import support
from tests.factories import order_payload

STORE = SqlCompensationStore(breaker_window=60)


@pytest.fixture
def client() -> TestClient:
    return TestClient(create_api(), headers=support.api_key_headers())


def new_order(client: TestClient) -> uuid.UUID:
    reply = client.post("/orders", json=order_payload())
    assert reply.status_code == 202, reply.text
    return uuid.UUID(reply.json()["order_id"])


def set_steps(order_id: uuid.UUID, **statuses: str) -> None:
    with unit_of_work() as session:
        for step, status in statuses.items():
            session.execute(
                update(StepOutcome)
                .where(StepOutcome.order_id == order_id, StepOutcome.step == step)
                .values(
                    status=status, downstream_id=f"{step}-id" if status == "succeeded" else None
                )
            )
        session.execute(update(Order).where(Order.id == order_id).values(status="processing"))


def cancel(client: TestClient, order_id: uuid.UUID, **body: Any) -> Any:
    return client.post(f"/orders/{order_id}/cancel", json=body)


def order_row(order_id: uuid.UUID) -> Order:
    with unit_of_work() as session:
        order = session.get(Order, order_id)
        assert order is not None
        session.expunge(order)
        return order


def event_types(order_id: uuid.UUID) -> list[str]:
    with unit_of_work() as session:
        return list(
            session.scalars(
                select(IntegrationEvent.event_type)
                .where(IntegrationEvent.order_id == order_id)
                .order_by(IntegrationEvent.seq)
            )
        )


def test_an_order_nothing_was_done_for_is_cancelled_at_once(client: TestClient) -> None:
    order_id = new_order(client)

    reply = cancel(client, order_id, reason="duplicate")

    assert reply.status_code == 202 and reply.json()["status"] == "cancelled"
    assert order_row(order_id).cancel_reason == "duplicate"
    assert event_types(order_id)[-2:] == ["order.cancel_requested", "order.cancelled"]
    again = cancel(client, order_id)
    assert again.status_code == 202 and again.json()["status"] == "cancelled"
    assert event_types(order_id).count("order.cancel_requested") == 1


def test_a_cancel_with_done_steps_queues_their_compensations_last_first(
    client: TestClient,
) -> None:
    order_id = new_order(client)
    set_steps(order_id, inventory="succeeded", fulfillment="succeeded")

    reply = cancel(client, order_id)

    assert reply.status_code == 202 and reply.json()["status"] == "cancelling"
    with unit_of_work() as session:
        row = session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "compensate")).one()
        assert row.start_step == "invoice" and row.sent_at is not None
    # The chain's first link, compensate.invoice, waits in the invoice queue.
    assert support.queue_depth(support.work_queue_names()[2]) == 1


def test_a_completed_order_is_not_cancelled_and_anothers_order_is_not_found(
    client: TestClient,
) -> None:
    order_id = new_order(client)
    with unit_of_work() as session:
        session.execute(update(Order).where(Order.id == order_id).values(status="completed"))

    assert cancel(client, order_id).status_code == 409
    assert cancel(client, order_id).json()["error"] == "already_completed"
    stranger = TestClient(create_api(), headers=support.api_key_headers("someone-else"))
    assert stranger.post(f"/orders/{order_id}/cancel", json={}).status_code == 404
    assert cancel(client, order_id, reason="").status_code == 422
    assert cancel(client, order_id, why="x").status_code == 422


def started(order_id: uuid.UUID, step: str) -> Started:
    begun = STORE.begin(order_id, step, gate_passed=False)
    assert isinstance(begun, Started), begun
    return begun


def test_compensations_wait_for_a_step_whose_retry_is_to_come(client: TestClient) -> None:
    # An attempt failed (a timeout: the call may have reached the ERP) with a retry planned when
    # the cancel came: the order is not cancelled, nor compensated, until that retry settles it.
    order_id = new_order(client)
    set_steps(order_id, inventory="error")

    assert cancel(client, order_id).json()["status"] == "cancelling"
    assert STORE.begin(order_id, "invoice", gate_passed=False) == Wait(2)

    with unit_of_work() as session:  # the retry gave up: nothing of it to undo
        session.execute(
            update(StepOutcome)
            .where(StepOutcome.order_id == order_id, StepOutcome.step == "inventory")
            .values(status="failed")
        )
    assert isinstance(STORE.begin(order_id, "invoice", gate_passed=False), AlreadyDone)
    assert order_row(order_id).status == "cancelled"


def test_compensations_wait_for_a_step_in_flight_and_go_last_first(client: TestClient) -> None:
    order_id = new_order(client)
    set_steps(order_id, inventory="succeeded", fulfillment="running")
    assert cancel(client, order_id).json()["status"] == "cancelling"

    assert STORE.begin(order_id, "invoice", gate_passed=False) == Wait(2)
    set_steps(order_id, fulfillment="succeeded")
    with unit_of_work() as session:  # set_steps put it back to processing
        session.execute(update(Order).where(Order.id == order_id).values(status="cancelling"))
    assert isinstance(STORE.begin(order_id, "invoice", gate_passed=False), AlreadyDone)
    early = STORE.begin(order_id, "inventory", gate_passed=False)
    assert isinstance(early, Refused) and "fulfillment not compensated" in early.reason

    shipment = started(order_id, "fulfillment")
    assert shipment.earlier["fulfillment"] == "fulfillment-id"
    STORE.succeed(order_id, "fulfillment", attempt=1, outcome=Outcome("fulfillment-id"), seconds=0)
    started(order_id, "inventory")
    STORE.succeed(order_id, "inventory", attempt=1, outcome=Outcome("inventory-id"), seconds=0)

    assert order_row(order_id).status == "cancelled"
    assert isinstance(STORE.begin(order_id, "inventory", gate_passed=False), Refused)


def test_a_compensation_given_up_is_an_open_failure_and_the_order_can_be_closed(
    client: TestClient,
) -> None:
    order_id = new_order(client)
    set_steps(order_id, inventory="succeeded", fulfillment="succeeded")
    cancel(client, order_id)
    started(order_id, "fulfillment")
    error = PermanentError(
        system="warehouse", message="it left", status=409, code="already_dispatched"
    )

    SqlCompensationRecorder().gave_up(
        order_id, "fulfillment", kind="permanent", error=error, attempts=1
    )

    with unit_of_work() as session:
        failure = session.scalars(select(Failure)).one()
        assert failure.error_kind == "compensation" and failure.state == "open"
    assert order_row(order_id).status == "cancelling"
    refused = STORE.begin(order_id, "fulfillment", gate_passed=False)
    assert isinstance(refused, Refused) and "failed for good" in refused.reason

    with unit_of_work() as session:
        assert close_order(session, order_id, by="ops", reason="gone") == "closed"
    with unit_of_work() as session:
        failure = session.scalars(select(Failure)).one()
        assert failure.state == "closed" and failure.resolved_by == "ops"
    assert order_row(order_id).status == "closed"


def address(**overrides: str) -> dict[str, str]:
    return {**order_payload()["ship_to"], **overrides}


def test_patch_amends_ship_to_until_the_shipment_used_it(client: TestClient) -> None:
    order_id = new_order(client)

    done = client.patch(f"/orders/{order_id}", json={"ship_to": address(postal_code="69002")})

    assert done.status_code == 200, done.text
    assert order_row(order_id).ship_to["postal_code"] == "69002"
    with unit_of_work() as session:
        [event] = session.scalars(
            select(IntegrationEvent).where(IntegrationEvent.event_type == "order.amended")
        ).all()
    assert event.detail["after"]["ship_to"]["postal_code"] == "69002"
    assert event.detail["before"]["ship_to"]["postal_code"] != "69002"
    bad = client.patch(f"/orders/{order_id}", json={"ship_to": address(country="XX")})
    assert bad.status_code == 422 and "country" in bad.text
    assert client.patch(f"/orders/{order_id}", json={"lines": []}).status_code == 422
    stranger = TestClient(create_api(), headers=support.api_key_headers("someone-else"))
    assert stranger.patch(f"/orders/{order_id}", json={"ship_to": address()}).status_code == 404

    set_steps(order_id, inventory="succeeded", fulfillment="succeeded")
    late = client.patch(f"/orders/{order_id}", json={"ship_to": address(postal_code="1")})
    assert late.status_code == 409
    assert late.json()["error"] == "field_already_used" and late.json()["field"] == "ship_to"
    # The customer is used by the invoice, which has not run: still amendable.
    customer = {**order_payload()["customer"], "email": "new@example.com"}
    assert client.patch(f"/orders/{order_id}", json={"customer": customer}).status_code == 200


def stored_lines(order_id: uuid.UUID) -> list[tuple[str, int, str]]:
    with unit_of_work() as session:
        order = session.get_one(Order, order_id)
        return [(x.sku, x.qty, f"{x.unit_price:.2f}") for x in order.lines]


def test_lines_are_amended_by_patch_and_by_position_until_the_reservation_used_them(
    client: TestClient,
) -> None:
    order_id = new_order(client)
    (sku, qty, price), *others = stored_lines(order_id)
    rest = [{"sku": s, "qty": q, "unit_price": p} for s, q, p in others]
    line = {"sku": "SKU-NEW-1", "qty": qty + 2, "unit_price": price}
    after = [("SKU-NEW-1", qty + 2, price), *others]

    # A whole list, one line fewer: the rows follow.
    done = client.patch(f"/orders/{order_id}", json={"lines": [line, *rest[1:]]})

    assert done.status_code == 200, done.text
    assert stored_lines(order_id) == after[:1] + after[2:]
    back = client.patch(f"/orders/{order_id}", json={"lines": [line, *rest]})
    assert back.status_code == 200, back.text
    assert stored_lines(order_id) == after
    with unit_of_work() as session:
        event, _ = session.scalars(
            select(IntegrationEvent)
            .where(IntegrationEvent.event_type == "order.amended")
            .order_by(IntegrationEvent.seq)
        ).all()
    assert event.detail["before"]["lines"][0]["sku"] == sku
    assert event.detail["after"]["lines"][0] == {**line, "unit_price": f"{price}00"}
    assert len(event.detail["after"]["lines"]) == len(after) - 1
    assert {"lines.0.qty", "lines.0.sku"} <= set(event.detail["changed"])
    bad = client.patch(f"/orders/{order_id}", json={"lines": [{**line, "qty": 0}, *rest]})
    assert bad.status_code == 422 and "qty" in bad.text

    # The command line's --set lines.0.qty=7, and what it may not say.
    with unit_of_work() as session:
        shown = amend_order(
            session, order_id, parse_sets(["lines.0.qty=7"]), by="ops", reason="r", apply=False
        )
    assert shown.changes == [("lines.0.qty", qty + 2, 7)]
    for wrong in (f"lines.{len(after)}.qty=2", "lines.0.unit_price=0.01", "lines.0.qty=-1"):
        with pytest.raises(BadAmendment, match="lines"), unit_of_work() as session:
            amend_order(session, order_id, parse_sets([wrong]), by="ops", reason="r")
    assert stored_lines(order_id) == after

    for status in ("running", "succeeded"):
        set_steps(order_id, inventory=status)
        late = client.patch(f"/orders/{order_id}", json={"lines": [{**line, "qty": 1}]})
        assert late.status_code == 409, late.text
        assert late.json()["error"] == "field_already_used" and late.json()["field"] == "lines"
    with pytest.raises(FieldAlreadyUsed, match="inventory"), unit_of_work() as session:
        amend_order(session, order_id, parse_sets(["lines.0.qty=7"]), by="ops", reason="r")
    assert stored_lines(order_id) == after
