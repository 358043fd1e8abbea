"""Senders own their orders: one CRM can neither read nor collide with another's."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from hub.core.senders import ANONYMOUS_SENDER
from hub.db.engine import unit_of_work
from hub.db.models import Order
from hub.entrypoints.api import create_api
from hub.services.orders import AmbiguousOrder, find_order
from hub.settings import get_settings
from tests import support
from tests.factories import order_payload


def two_senders() -> tuple[TestClient, TestClient]:
    api = create_api()
    return (
        TestClient(api, headers=support.api_key_headers("crm-a")),
        TestClient(api, headers=support.api_key_headers("crm-b")),
    )


def test_a_sender_cannot_read_another_senders_order_by_id_or_external_id() -> None:
    crm_a, crm_b = two_senders()
    payload = order_payload()
    order_id = crm_a.post("/orders", json=payload).json()["order_id"]

    by_id = crm_b.get(f"/orders/{order_id}")
    by_external_id = crm_b.get(f"/orders/{payload['external_id']}")

    # A 404 like a missing order's, not a 403: B must not learn that the order exists.
    assert by_id.status_code == by_external_id.status_code == 404
    assert by_id.json()["error"] == "not_found"
    assert "ada" not in by_id.text.lower() and "ada" not in by_external_id.text.lower()
    mine = crm_a.get(f"/orders/{order_id}")
    assert mine.status_code == 200 and mine.json()["sender"] == "crm-a"


def test_the_same_external_id_from_two_senders_makes_two_orders() -> None:
    crm_a, crm_b = two_senders()
    payload = order_payload()

    first = crm_a.post("/orders", json=payload)
    second = crm_b.post("/orders", json=payload)
    again = crm_a.post("/orders", json=payload)

    assert (first.status_code, second.status_code, again.status_code) == (202, 202, 200)
    assert first.json()["order_id"] != second.json()["order_id"]
    assert again.json()["order_id"] == first.json()["order_id"]
    assert (
        crm_b.get(f"/orders/{payload['external_id']}").json()["order_id"]
        == (second.json()["order_id"])
    )


def test_the_same_idempotency_key_from_two_senders_makes_two_orders() -> None:
    crm_a, crm_b = two_senders()
    key = {"Idempotency-Key": "same-key-1"}

    first = crm_a.post("/orders", json=order_payload(), headers=key)
    b_order = order_payload()
    second = crm_b.post("/orders", json=b_order, headers=key)
    repeat = crm_b.post("/orders", json=b_order, headers=key)

    assert (first.status_code, second.status_code, repeat.status_code) == (202, 202, 200)
    assert first.json()["order_id"] != second.json()["order_id"]
    assert repeat.json()["order_id"] == second.json()["order_id"]


def test_operators_see_every_senders_orders_and_are_told_when_an_external_id_is_shared() -> None:
    crm_a, crm_b = two_senders()
    payload = order_payload()
    a_id = crm_a.post("/orders", json=payload).json()["order_id"]
    crm_b.post("/orders", json=payload)

    with unit_of_work() as session:
        by_id = find_order(session, a_id, sender=None)
        try:
            find_order(session, payload["external_id"], sender=None)
        except AmbiguousOrder as exc:
            ambiguous = exc.senders
    assert by_id is not None and by_id.sender == "crm-a"
    assert ambiguous == ["crm-a", "crm-b"]


def test_with_intake_auth_off_orders_belong_to_the_anonymous_sender() -> None:
    client = TestClient(create_api(get_settings().model_copy(update={"intake_auth": False})))

    order_id = client.post("/orders", json=order_payload()).json()["order_id"]

    assert client.get(f"/orders/{order_id}").status_code == 200
    with unit_of_work() as session:
        owner = session.scalar(select(Order.sender).where(Order.id == order_id))
    assert owner == ANONYMOUS_SENDER
    keyed = TestClient(create_api(), headers=support.api_key_headers("crm-a"))
    assert keyed.get(f"/orders/{order_id}").status_code == 404
