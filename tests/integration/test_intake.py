"""Intake over HTTP against real PostgreSQL and RabbitMQ (no worker consuming)."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from hub.bootstrap import create_celery_app
from hub.broker.publisher import CeleryChainPublisher
from hub.db.engine import unit_of_work
from hub.db.models import IntegrationEvent, Order, OrderLine, OutboxMessage, StepOutcome
from hub.entrypoints.api import create_api
from hub.settings import get_settings
from tests import support
from tests.factories import order_payload

DEAD_BROKER = "amqp://guest:guest@127.0.0.1:5999//"  # nothing listens there


@pytest.fixture
def client() -> TestClient:
    return TestClient(create_api(), headers=support.api_key_headers())


def counts() -> dict[str, int]:
    with unit_of_work() as session:
        return {
            model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
            for model in (Order, OrderLine, OutboxMessage, StepOutcome)
        }


def post(client: TestClient, payload: dict[str, Any], **headers: str) -> Any:
    return client.post("/orders", json=payload, headers=headers)


def test_an_order_is_stored_with_lines_steps_and_outbox_and_published_at_once(
    client: TestClient,
) -> None:
    response = post(client, order_payload())

    assert response.status_code == 202
    order_id = response.json()["order_id"]
    assert response.headers["location"] == f"/orders/{order_id}"
    assert counts() == {"orders": 1, "order_lines": 2, "outbox": 1, "step_outcomes": 3}
    with unit_of_work() as session:
        outbox = session.scalars(select(OutboxMessage)).one()
        events = [
            e.event_type
            for e in session.scalars(select(IntegrationEvent).order_by(IntegrationEvent.seq))
        ]
    assert outbox.sent_at is not None, "the fast path publishes right after commit"
    assert events == ["order.received", "order.queued"]
    assert support.queue_depth(support.work_queue_names()[0]) == 1


def test_the_status_url_shows_the_order_and_its_timeline(client: TestClient) -> None:
    payload = order_payload()
    order_id = post(client, payload).json()["order_id"]

    by_id = client.get(f"/orders/{order_id}").json()
    by_external_id = client.get(f"/orders/{payload['external_id']}").json()

    assert by_id == by_external_id
    assert by_id["status"] == "received"
    assert set(by_id["steps"]) == {"inventory", "fulfillment", "invoice"}
    assert [e["event_type"] for e in by_id["timeline"]] == ["order.received", "order.queued"]
    assert client.get(f"/orders/{uuid.uuid4()}").status_code == 404


def test_a_repeat_by_external_id_gives_the_same_order_and_stores_nothing_new(
    client: TestClient,
) -> None:
    payload = order_payload()
    first = post(client, payload)
    second = post(client, payload)

    assert (first.status_code, second.status_code) == (202, 200)
    assert second.json()["order_id"] == first.json()["order_id"]
    assert counts()["orders"] == 1 and counts()["outbox"] == 1


def test_a_repeat_by_idempotency_key_gives_the_same_order(client: TestClient) -> None:
    payload = order_payload()
    first = post(client, payload, **{"Idempotency-Key": "k-123"})
    second = post(client, payload, **{"Idempotency-Key": "k-123"})

    assert second.status_code == 200
    assert second.json()["order_id"] == first.json()["order_id"]
    assert counts()["orders"] == 1


def test_a_reused_idempotency_key_with_another_order_is_refused_not_swallowed(
    client: TestClient,
) -> None:
    earlier = order_payload()
    first = post(client, earlier, **{"Idempotency-Key": "k-9"}).json()
    new = order_payload()
    reply = post(client, new, **{"Idempotency-Key": "k-9"})

    # 422 naming the stored order, never a 200 that says the new order is completed.
    assert reply.status_code == 422, reply.text
    body = reply.json()
    assert body["error"] == "idempotency_key_reuse"
    assert body["fields"] == ["external_id"]
    assert (body["order_id"], body["external_id"]) == (first["order_id"], earlier["external_id"])
    assert counts()["orders"] == 1
    # Sent again with a key of its own, the new order is accepted.
    assert post(client, new, **{"Idempotency-Key": "k-10"}).status_code == 202


def test_an_accepted_external_id_with_other_lines_is_a_409_naming_what_differs(
    client: TestClient,
) -> None:
    payload = order_payload()
    first = post(client, payload).json()
    changed = {**payload, "lines": [{"sku": "SKU-001", "qty": 9999, "unit_price": "0.01"}]}
    reply = post(client, changed)

    assert reply.status_code == 409, reply.text
    body = reply.json()
    assert body["error"] == "order_differs" and body["fields"] == ["lines"]
    assert f"PATCH /orders/{first['order_id']}" in body["detail"]
    with unit_of_work() as session:
        lines = session.scalars(select(OrderLine.qty)).all()
    assert 9999 not in lines and counts()["orders"] == 1


def test_twenty_identical_orders_at_the_same_instant_make_one_order(client: TestClient) -> None:
    payload = order_payload()
    start = threading.Barrier(20)
    answers: list[tuple[int, str]] = []

    def send() -> None:
        start.wait()
        response = post(client, payload)
        answers.append((response.status_code, response.json()["order_id"]))

    threads = [threading.Thread(target=send) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(code for code, _ in answers) == [200] * 19 + [202]
    assert len({order_id for _, order_id in answers}) == 1
    assert counts() == {"orders": 1, "order_lines": 2, "outbox": 1, "step_outcomes": 3}


@pytest.mark.parametrize(
    ("body", "headers", "status", "named"),
    [
        (b'{"external_id": "x"', {"content-type": "application/json"}, 422, "Invalid JSON"),
        (b"external_id=x", {"content-type": "application/x-www-form-urlencoded"}, 415, "json"),
        (b"{}", {"content-type": "application/json"}, 422, "external_id"),
        (b"x" * 70_000, {"content-type": "application/json"}, 413, "larger"),
    ],
)
def test_bad_input_is_refused_naming_the_problem_and_nothing_is_stored(
    client: TestClient,
    body: bytes,
    headers: dict[str, str],
    status: int,
    named: str,
) -> None:
    response = client.post("/orders", content=body, headers=headers)

    assert response.status_code == status
    assert named in response.text
    assert counts() == {"orders": 0, "order_lines": 0, "outbox": 0, "step_outcomes": 0}


def test_with_the_broker_down_the_order_is_still_accepted_and_the_relay_publishes_it_later() -> (
    None
):
    dead_broker = create_celery_app(get_settings().model_copy(update={"broker_url": DEAD_BROKER}))
    client = TestClient(
        create_api(publisher=CeleryChainPublisher(dead_broker, timeout=1)),
        headers=support.api_key_headers(),
    )

    response = post(client, order_payload())

    assert response.status_code == 202
    with unit_of_work() as session:
        row = session.scalars(select(OutboxMessage)).one()
    assert row.sent_at is None and row.publish_attempts == 1
    assert "RabbitMQ" in (row.last_error or "")
    assert support.queue_depth(support.work_queue_names()[0]) == 0

    from hub.services.outbox import relay_once
    from tasks.app import app

    assert relay_once(CeleryChainPublisher(app, timeout=2), batch_size=10) == 1
    assert support.queue_depth(support.work_queue_names()[0]) == 1
