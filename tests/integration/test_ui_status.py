"""The status page on real PostgreSQL and RabbitMQ: what ``hub status`` shows, in a browser."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from hub.core.schemas import OrderIn
from hub.db.engine import get_engine, unit_of_work
from hub.entrypoints.api import create_api
from hub.services.intake import accept_order
from hub.settings import get_settings
from tests.factories import order_payload
from tests.support import make_failure

DEAD_BROKER = "amqp://guest:guest@127.0.0.1:5999//"


def signed_in(client: TestClient) -> TestClient:
    password = get_settings().operator_password
    assert password is not None
    client.auth = ("test-operator", password.get_secret_value())
    return client


@pytest.fixture
def client() -> TestClient:
    return signed_in(TestClient(create_api()))


@pytest.fixture
def broker_down(monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    get_settings.cache_clear()
    monkeypatch.setenv("HUB_BROKER_URL", DEAD_BROKER)
    yield signed_in(TestClient(create_api()))
    get_settings.cache_clear()


def open_breaker(system: str, opened: datetime, retry: datetime) -> None:
    with get_engine().begin() as connection:
        connection.execute(
            text(
                "INSERT INTO breakers (system, state, calls, failures, opened_at, retry_at,"
                " updated_at) VALUES (:system, 'open', 10, 10, :opened, :retry, now())"
            ),
            {"system": system, "opened": opened, "retry": retry},
        )


def test_the_page_shows_what_hub_status_shows(client: TestClient) -> None:
    make_failure(step="fulfillment", kind="exhausted", http_status=503, code="down")
    opened = datetime(2026, 11, 25, 9, 15, 55, tzinfo=UTC)
    open_breaker("erp", opened, opened + timedelta(seconds=15))

    page = client.get("/ui/status")

    assert page.status_code == 200
    html = page.text
    assert 'id="orders-failed">1<' in html
    assert "Outbox: 1 unsent" in html
    prefix = get_settings().queue_prefix
    assert f"<code>{prefix}.inventory</code>" in html and "failure queue" in html
    assert "celery_delayed_*" in html
    assert 'href="/ui/failures?step=fulfillment&amp;kind=exhausted">1<' in html
    erp = html.split('id="breaker-erp"')[1].split("</tr>")[0]
    assert 'data-state="open"' in html.split('id="breaker-erp"')[1][:30]
    assert "2026-11-25 09:15:55Z" in erp and "2026-11-25 09:16:10Z" in erp
    assert 'id="breaker-warehouse" data-state="closed"' in html
    assert "erp looks down: its breaker is open since 2026-11-25 09:15:55Z" in html
    assert 'id="down-system-warehouse"' not in html
    assert "Workers online: 0 (none answered)" in html


def test_the_page_refreshes_its_live_part_with_a_script_of_its_own(client: TestClient) -> None:
    page = client.get("/ui/status", params={"every": "3"})

    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "connect-src 'self'" in policy
    assert "unsafe-inline" not in policy.split("script-src")[1].split(";")[0]
    scripts = re.findall(r"<script[^>]*>", page.text)
    assert scripts == ['<script src="/ui/static/status.js" defer>'], "ours, and nothing else"
    assert 'data-source="/ui/status/live" data-every="3"' in page.text
    live = client.get("/ui/status/live")
    # The fragment starts with the page's headline: a refresh keeps it current too.
    assert live.status_code == 200 and live.text.lstrip().startswith('<p class="headline ')
    assert "<html" not in live.text and "<script" not in live.text
    script = client.get("/ui/static/status.js")
    assert script.headers["content-type"].startswith("text/javascript")
    assert "fetch(" in script.text and "http" not in script.text.split("fetch(")[1][:80]


def test_the_refresh_interval_stays_within_bounds(client: TestClient) -> None:
    for asked, used in (("1", "2"), ("600", "60"), ("soon", "5")):
        page = client.get("/ui/status", params={"every": asked}).text
        assert f'data-every="{used}"' in page


def test_the_failures_pages_still_run_no_script(client: TestClient) -> None:
    policy = client.get("/ui/failures").headers["content-security-policy"]

    assert policy.startswith("default-src 'none'") and "script-src" not in policy


def test_a_service_that_is_down_is_named(broker_down: TestClient) -> None:
    for url in ("/ui/status", "/ui/status/live"):
        page = broker_down.get(url)
        assert page.status_code == 200
        assert 'id="down-rabbitmq"' in page.text
        assert "RabbitMQ unreachable at amqp://guest:**@127.0.0.1:5999//" in page.text
        assert "start it with: rabbitmq-server" in page.text
        assert page.text.count('class="down"') == 1, "named once, not once per part"
        assert 'id="orders"' in page.text, "the database's part is still shown"


def test_head_on_the_operator_pages_is_answered_not_405(client: TestClient) -> None:
    for url in ("/ui/status", "/ui/status/live", "/ui/failures"):
        reply = client.head(url)
        assert reply.status_code == 200, (url, reply.status_code)
        assert reply.content == b""


def test_the_page_opens_with_a_headline_naming_what_is_wrong(client: TestClient) -> None:
    opened = datetime(2026, 11, 25, 9, 15, 55, tzinfo=UTC)
    open_breaker("warehouse", opened, opened + timedelta(seconds=15))

    html = client.get("/ui/status").text

    found = re.search(r'<p class="headline (\w+)" id="headline">([^<]*)</p>', html)
    assert found, html[:2000]
    assert found.group(1) == "trouble"
    # No worker runs in the integration tier: that is said too.
    assert "warehouse looks down (breaker open)" in found.group(2)
    assert "no worker answers" in found.group(2)


def test_the_failures_page_shows_an_outage_the_status_page_knows(client: TestClient) -> None:
    make_failure()  # a permanent failure: what the page listed, and all it listed, before
    with unit_of_work() as session:
        for _ in range(3):  # orders under way, held back by the open breakers: no failure
            accept_order(
                session,
                OrderIn.model_validate(order_payload()),
                idempotency_key=None,
                sender="tests",
            )
    opened = datetime.now(UTC)
    for system in ("erp", "warehouse"):
        open_breaker(system, opened, opened + timedelta(seconds=30))

    html = client.get("/ui/failures").text

    assert 'id="down-system-erp"' in html and 'id="down-system-warehouse"' in html
    assert "erp looks down: its breaker is open since" in html
    summary = html.split('id="outage-summary">')[1].split("</p>")[0]
    assert "3 orders under way wait without a failure record" in " ".join(summary.split())
    assert "A replay of a failure at erp or warehouse waits behind its breaker" in summary
    assert "a permanent failure fails again until its cause is fixed" in summary
    assert 'href="/ui/status" id="outage-status-link"' in html


def test_no_outage_no_banner(client: TestClient) -> None:
    make_failure()
    html = client.get("/ui/failures").text
    assert 'id="outage"' not in html and "looks down" not in html
