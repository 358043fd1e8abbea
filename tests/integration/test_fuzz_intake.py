"""Fuzz the intake API on real PostgreSQL and RabbitMQ: never a 5xx, nothing stored when refused.

Two generators: schemathesis, from the app's own OpenAPI (valid orders and schema violations,
for each intake operation), and hypothesis, with bytes, JSON and order references no schema
would describe. Examples
are capped so the whole file stays well under a minute.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import hypothesis.strategies as st
import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from sqlalchemy import text

from hub.db.engine import get_engine
from hub.entrypoints.api import create_api
from tests import support
from tests.factories import order_payload

TABLES = ("orders", "order_lines", "outbox", "step_outcomes", "integration_events", "failures")
FUZZ = settings(
    max_examples=300,
    deadline=None,
    database=None,  # no .hypothesis/ directory in the checkout
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def stored() -> dict[str, int]:
    with get_engine().connect() as connection:
        return {
            table: int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
            for table in TABLES
        }


def assert_answered_without_storing_refusals(
    status: int, before: dict[str, int], body: str
) -> None:
    assert status < 500, f"server error {status}: {body[:500]}"
    after = stored()
    if status == 202:
        assert after["orders"] == before["orders"] + 1
    else:
        assert after == before, f"HTTP {status} but rows changed: {before} -> {after}"


@pytest.fixture
def auth() -> dict[str, str]:
    return support.api_key_headers("fuzz")


@pytest.fixture(scope="module")
def cases() -> st.SearchStrategy[schemathesis.Case]:
    """Requests to the intake's operations in the app's OpenAPI: valid ones and violations.

    Operator pages are left out on purpose: they are not the senders' surface.
    """
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_api()).include(
        path=["/orders", "/orders/{ref}", "/healthz"]
    )
    return st.one_of(
        schema.as_strategy(schemathesis.GenerationMode.POSITIVE),
        schema.as_strategy(schemathesis.GenerationMode.NEGATIVE),
    )


@given(data=st.data())
@FUZZ
def test_schema_fuzz_gets_no_5xx_and_stores_nothing_it_refuses(
    cases: st.SearchStrategy[schemathesis.Case], auth: dict[str, str], data: st.DataObject
) -> None:
    case = data.draw(cases)
    before = stored()

    response = case.call(headers=auth)

    assert_answered_without_storing_refusals(response.status_code, before, response.text)


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(create_api())


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner),
    max_leaves=20,
)


def mutations() -> st.SearchStrategy[Any]:
    """A valid order with one part replaced by something else (or an unknown field added)."""
    paths = [
        ("external_id",),
        ("customer",),
        ("customer", "email"),
        ("customer", "name"),
        ("ship_to", "postal_code"),
        ("ship_to", "country"),
        ("currency",),
        ("lines",),
        ("lines", 0),
        ("lines", 0, "qty"),
        ("lines", 0, "unit_price"),
        ("lines", 0, "sku"),
        ("unknown_field",),
    ]

    def mutate(path: tuple[str | int, ...], value: Any) -> Any:
        order = order_payload()
        target: Any = order
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value
        return order

    return st.builds(mutate, st.sampled_from(paths), json_values)


@given(
    body=st.one_of(
        st.binary(max_size=300),
        json_values.map(lambda v: json.dumps(v).encode()),
        mutations().map(lambda v: json.dumps(v).encode()),
    ),
    content_type=st.sampled_from(
        ["application/json", "application/json; charset=utf-8", "text/plain", ""]
    ),
)
@FUZZ
def test_raw_bodies_get_no_5xx_and_store_nothing_they_are_refused_for(
    client: TestClient, auth: dict[str, str], body: bytes, content_type: str
) -> None:
    before = stored()

    response = client.post("/orders", content=body, headers={**auth, "content-type": content_type})

    assert_answered_without_storing_refusals(response.status_code, before, response.text)


@given(ref=st.text(min_size=1, max_size=300))
@FUZZ
def test_any_order_reference_gets_an_answer_not_a_5xx(
    client: TestClient, auth: dict[str, str], ref: str
) -> None:
    response = client.get(f"/orders/{quote(ref, safe='')}", headers=auth)

    assert response.status_code < 500, response.text[:500]
