"""Cheap, quiet public surfaces (issue: /metrics and /healthz queried PostgreSQL and RabbitMQ on
every request, /healthz told anyone the database host and broker user, /docs was open, NUL in a
path answered 500, duplicate JSON keys were accepted).

On the real API, PostgreSQL and RabbitMQ: many scrapes cost one snapshot; /metrics takes a token
when one is set; /healthz names only what is down; docs are off by default; control characters
in a path or query and duplicate keys are 4xx with nothing stored; the Host header is checked
when hosts are listed; the OpenAPI document lists 409 and 422."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import func, select

from hub.db.engine import unit_of_work
from hub.db.models import Order
from hub.entrypoints.api import create_api
from hub.settings import Settings, get_settings
from tests import support
from tests.factories import order_payload

DEAD_DATABASE = "postgresql+psycopg2://hub_user@127.0.0.1:5998/secret_db_name"
TOKEN = "metrics-token-0123456789"


def client(**changes: Any) -> TestClient:
    settings: Settings = get_settings().model_copy(update=changes)
    return TestClient(create_api(settings), follow_redirects=False)


def orders_stored() -> int:
    with unit_of_work() as session:
        return session.scalar(select(func.count()).select_from(Order)) or 0


def test_many_scrapes_within_the_snapshot_age_cost_one_snapshot() -> None:
    settings = get_settings().model_copy(update={"snapshot_max_age": 60.0})
    api = create_api(settings)
    http = TestClient(api)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: http.get("/metrics"), range(64)))
        health = list(pool.map(lambda _: http.get("/healthz"), range(64)))

    assert {a.status_code for a in answers} == {200} and {h.status_code for h in health} == {200}
    assert len({a.text for a in answers}) == 1, "every scrape got the same snapshot"
    assert api.state.metrics_page.refreshes == 1 and api.state.health.refreshes == 1


def test_metrics_need_the_token_when_one_is_set() -> None:
    http = client(metrics_token=SecretStr(TOKEN))
    assert http.get("/metrics").status_code == 401
    assert http.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    right = http.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert right.status_code == 200 and "hub_dependency_up" in right.text


def test_healthz_says_which_part_is_down_and_nothing_about_where() -> None:
    answer = client(database_url=DEAD_DATABASE).get("/healthz")

    assert answer.status_code == 503
    assert answer.json() == {"status": "unavailable", "down": ["postgresql"]}
    for secret in ("5998", "hub_user", "secret_db_name", "127.0.0.1", "guest"):
        assert secret not in answer.text


def test_api_docs_are_off_unless_asked() -> None:
    http = client(api_docs=False)
    for path in ("/docs", "/redoc", "/openapi.json"):
        assert http.get(path).status_code == 404, path
    assert client(api_docs=True).get("/openapi.json").status_code == 200


def test_the_openapi_document_lists_the_refusals_of_post_orders() -> None:
    document = client(api_docs=True).get("/openapi.json").json()
    answers = document["paths"]["/orders"]["post"]["responses"]
    assert {"200", "202", "401", "409", "413", "415", "422"} <= set(answers)
    assert "order_differs" in answers["409"]["description"]
    assert "idempotency_key_reuse" in answers["422"]["description"]


@pytest.mark.parametrize(
    "path",
    ["/ui/orders/a%00b", "/ui/failures?code=%00", "/orders/a%00b", "/orders/x?y=%1b", "/h%7fz"],
)
def test_control_characters_in_a_path_or_query_are_a_400_never_a_500(path: str) -> None:
    answer = client().get(path, headers=support.api_key_headers())
    assert answer.status_code == 400
    assert answer.json()["error"] == "bad_request"


def test_a_key_twice_in_one_object_is_refused_and_nothing_is_stored() -> None:
    payload = order_payload()
    body = json.dumps(payload)
    # The second "currency" would win in most parsers; the CRM may have meant the first.
    doubled = body.replace('"currency": "EUR"', '"currency": "EUR", "currency": "USD"')
    assert doubled != body
    headers = {**support.api_key_headers(), "Content-Type": "application/json"}

    answer = client().post("/orders", content=doubled, headers=headers)

    assert answer.status_code == 422
    assert answer.json()["detail"] == [
        {"field": "currency", "message": "this key appears twice in one object"}
    ]
    assert orders_stored() == 0


def test_a_host_not_listed_is_refused_and_no_redirect_uses_the_host() -> None:
    listed = client(allowed_hosts="hub.example.com,127.0.0.1")
    assert listed.get("/healthz", headers={"Host": "evil.example"}).status_code == 400
    assert listed.get("/healthz", headers={"Host": "hub.example.com"}).status_code in (200, 503)

    # Starlette's trailing-slash redirect is built from the Host header: there is none.
    answer = client().get("/ui/failures/", headers={"Host": "evil.example"})
    assert "evil.example" not in answer.headers.get("location", "")


def test_a_key_twice_in_an_amendment_is_refused_too() -> None:
    headers = {**support.api_key_headers(), "Content-Type": "application/json"}
    http = client()
    posted = http.post("/orders", content=json.dumps(order_payload()), headers=headers)
    assert posted.status_code == 202
    doubled = '{"ship_to": {"city": "A"}, "ship_to": {"city": "B"}}'

    answer = http.patch(f"/orders/{posted.json()['order_id']}", content=doubled, headers=headers)

    assert answer.status_code == 422
    assert answer.json()["detail"][0]["field"] == "ship_to"
