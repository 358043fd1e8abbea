"""The failures page on real PostgreSQL and RabbitMQ: listing, filters, replay, discard, forgery."""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from hub.core.registry import REGISTRY
from hub.db.engine import unit_of_work
from hub.db.models import Failure, IntegrationEvent, Order, OutboxMessage, StepOutcome
from hub.entrypoints.api import create_api
from hub.entrypoints.ui.operator_auth import issue_form_token
from hub.settings import get_settings
from tests import support
from tests.support import make_failure

OPERATOR = "test-operator"


def operator_auth() -> tuple[str, str]:
    password = get_settings().operator_password
    assert password is not None
    return OPERATOR, password.get_secret_value()


@pytest.fixture
def client() -> TestClient:
    client = TestClient(create_api())
    client.auth = operator_auth()
    return client


def listed_ids(page: str) -> set[str]:
    return set(re.findall(r'<tr id="failure-([0-9a-f-]{36})"', page))


def form_token(client: TestClient) -> str:
    page = client.get("/ui/failures")
    found = re.search(r'name="token" value="([^"]+)"', page.text)
    assert found, "the page carries a form token"
    return found.group(1)


def flash(page: str) -> str:
    found = re.search(r'<p class="flash (\w+)" id="flash" role="status">([^<]*)</p>', page)
    assert found, "the page shows a flash message"
    return f"{found.group(1)}: {found.group(2)}"


def stored(failure_id: uuid.UUID) -> Failure:
    with unit_of_work() as session:
        failure = session.get(Failure, failure_id)
    assert failure is not None
    return failure


def events(kind: str) -> list[IntegrationEvent]:
    with unit_of_work() as session:
        return list(
            session.scalars(select(IntegrationEvent).where(IntegrationEvent.event_type == kind))
        )


def test_the_page_lists_open_failures_with_what_an_operator_needs(client: TestClient) -> None:
    failure = make_failure(message="ERP said: 409 out_of_stock for SKU-001", attempts=3)
    with unit_of_work() as session:
        order = session.get(Order, failure.order_id)
        assert order is not None
        external_id = order.external_id

    page = client.get("/ui/failures")

    assert page.status_code == 200
    assert listed_ids(page.text) == {str(failure.id)}
    row = page.text.split(f'id="failure-{failure.id}"')[1].split("</tr>")[0]
    for shown in (
        f'href="/ui/orders/{failure.order_id}"',
        external_id,
        "<td>inventory</td>",
        "<td>permanent</td>",
        "409",
        "out_of_stock",
        "ERP said: 409 out_of_stock for SKU-001",
        "<td>3</td>",
        failure.first_failed_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ"),
        f'action="/ui/failures/{failure.id}/replay"',
        f'action="/ui/failures/{failure.id}/discard"',
    ):
        assert shown in row, shown


def test_filters_narrow_the_list_by_step_kind_code_and_time_window(client: TestClient) -> None:
    inventory = make_failure()
    fulfillment = make_failure(
        step="fulfillment", kind="exhausted", http_status=503, code=None, message="down"
    )
    invoice = make_failure(step="invoice", kind="poison", http_status=None, code=None)
    hour_ago = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    in_an_hour = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    everything = {str(f.id) for f in (inventory, fulfillment, invoice)}

    def shown(**params: str) -> set[str]:
        response = client.get("/ui/failures", params=params)
        assert response.status_code == 200, response.text
        return listed_ids(response.text)

    assert shown() == everything
    assert shown(step="fulfillment") == {str(fulfillment.id)}
    assert shown(kind="poison") == {str(invoice.id)}
    assert shown(code="out_of_stock") == {str(inventory.id)}
    assert shown(step="inventory", kind="exhausted") == set()
    assert shown(since=hour_ago) == everything
    assert shown(since=hour_ago, until=in_an_hour) == everything
    assert shown(since=in_an_hour) == set()
    assert shown(until=hour_ago) == set()
    assert shown(since=datetime.now(UTC).isoformat()) == set()


def test_an_invalid_filter_is_named_and_lists_nothing(client: TestClient) -> None:
    make_failure()

    response = client.get("/ui/failures", params={"since": "yesterday", "step": "shipping"})

    assert response.status_code == 422
    assert listed_ids(response.text) == set()
    assert "since is not a date and time" in response.text
    assert "step must be one of inventory, fulfillment, invoice" in response.text


def test_downstream_text_is_escaped_never_run_as_html(client: TestClient) -> None:
    attack = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    failure = make_failure(message=attack, code="<b>code</b>")

    for url in ("/ui/failures", f"/ui/orders/{failure.order_id}"):
        page = client.get(url).text
        assert "<script>alert" not in page
        assert "<img src=x" not in page
        assert "<b>code</b>" not in page
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page

    reflected = client.get("/ui/failures", params={"code": '"><script>alert(2)</script>'}).text
    assert "<script>alert(2)" not in reflected


def test_the_order_page_shows_its_steps_failures_and_timeline(client: TestClient) -> None:
    failure = make_failure(step="fulfillment", message="warehouse refused")

    page = client.get(f"/ui/orders/{failure.order_id}")

    assert page.status_code == 200
    assert 'id="order-status">failed<' in page.text
    timeline = page.text.split('id="timeline"')[1]
    assert timeline.index("order.received") < timeline.index("order.failed")
    assert "warehouse refused" in page.text
    assert f'action="/ui/failures/{failure.id}/replay"' in page.text
    assert client.get(f"/ui/orders/{uuid.uuid4()}").status_code == 404


def test_replay_reopens_the_step_queues_it_and_records_the_operator(client: TestClient) -> None:
    failure = make_failure(step="fulfillment", kind="exhausted", http_status=503, code=None)
    other = make_failure()
    token = form_token(client)

    response = client.post(
        f"/ui/failures/{failure.id}/replay",
        data={"token": token, "next": "/ui/failures?step=fulfillment"},
        follow_redirects=False,
    )

    assert response.status_code == 303
    assert response.headers["location"] == "/ui/failures?step=fulfillment"
    page = client.get(response.headers["location"])
    assert flash(page.text) == f"ok: Replayed fulfillment of order {failure.order_id}: queued."
    assert listed_ids(client.get("/ui/failures").text) == {str(other.id)}
    replayed = stored(failure.id)
    assert replayed.state == "replayed"
    assert replayed.resolved_by == OPERATOR
    assert replayed.resolved_at is not None
    with unit_of_work() as session:
        outbox = session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.order_id == failure.order_id,
                OutboxMessage.start_step == "fulfillment",
            )
        ).one()
        step = session.get(StepOutcome, (failure.order_id, "fulfillment"))
        order = session.get(Order, failure.order_id)
    assert outbox.sent_at is not None, "published right after the replay, not left to the relay"
    assert step is not None and step.status == "pending"
    assert order is not None and order.status == "processing"
    [audit] = events("failure.replayed")
    assert audit.order_id == failure.order_id
    assert audit.step == "fulfillment"
    assert audit.detail["operator"] == OPERATOR
    assert audit.detail["failure_id"] == str(failure.id)
    fulfillment_queue = support.work_queue_names()[REGISTRY.step_names.index("fulfillment")]
    assert support.queue_depth(fulfillment_queue) == 1


def test_a_second_replay_of_the_same_failure_does_nothing(client: TestClient) -> None:
    failure = make_failure()
    token = form_token(client)

    client.post(f"/ui/failures/{failure.id}/replay", data={"token": token})
    again = client.post(f"/ui/failures/{failure.id}/replay", data={"token": token})

    assert flash(again.text) == (
        f"info: Failure of inventory for order {failure.order_id} was already replayed "
        f"by {OPERATOR}; nothing done."
    )
    with unit_of_work() as session:
        replays = session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.order_id == failure.order_id, OutboxMessage.sent_at.is_not(None)
            )
        ).all()
    assert len(replays) == 1
    assert len(events("failure.replayed")) == 1
    assert support.queue_depth(support.work_queue_names()[0]) == 1


def test_discard_needs_a_reason_and_records_it_with_the_operator(client: TestClient) -> None:
    failure = make_failure()
    token = form_token(client)

    refused = client.post(
        f"/ui/failures/{failure.id}/discard", data={"token": token, "reason": " "}
    )
    assert flash(refused.text) == "error: Discard needs a reason; nothing done."
    assert stored(failure.id).state == "open"

    done = client.post(
        f"/ui/failures/{failure.id}/discard",
        data={"token": token, "reason": "customer cancelled by phone"},
    )

    # Discard cancels the order; nothing of it had succeeded, so it is cancelled at once.
    assert flash(done.text) == (
        f"ok: Cancelled order {failure.order_id} (failure of inventory): what its steps did is "
        "undone, last first."
    )
    assert listed_ids(done.text) == set()
    discarded = stored(failure.id)
    assert discarded.state == "cancelled"
    assert discarded.resolved_by == OPERATOR
    assert discarded.resolution_reason == "customer cancelled by phone"
    [audit] = events("failure.cancelled")
    assert audit.detail["operator"] == OPERATOR
    assert audit.detail["reason"] == "customer cancelled by phone"
    with unit_of_work() as session:
        order = session.get(Order, failure.order_id)
    assert order is not None and order.status == "cancelled"
    assert order.cancel_reason == "customer cancelled by phone"


def test_close_ends_the_order_as_it_stands_with_the_reason(client: TestClient) -> None:
    failure = make_failure()
    token = form_token(client)

    done = client.post(
        f"/ui/failures/{failure.id}/close",
        data={"token": token, "reason": "handled by hand in the ERP"},
    )

    assert flash(done.text) == (
        f"ok: Closed order {failure.order_id} as it stands, without compensating."
    )
    assert stored(failure.id).state == "closed"
    [audit] = events("order.closed")
    assert audit.detail["by"] == OPERATOR
    assert audit.detail["reason"] == "handled by hand in the ERP"
    assert audit.detail["left_downstream"] == []
    with unit_of_work() as session:
        order = session.get(Order, failure.order_id)
    assert order is not None and order.status == "closed"
    again = client.post(
        f"/ui/failures/{failure.id}/close", data={"token": token, "reason": "twice"}
    )
    assert flash(again.text).startswith("info: ") and "already closed" in flash(again.text)


def test_an_unknown_failure_is_named_and_nothing_changes(client: TestClient) -> None:
    missing = uuid.uuid4()

    token = issue_form_token(get_settings(), OPERATOR)  # an empty list has no form to read it from

    response = client.post(f"/ui/failures/{missing}/replay", data={"token": token})

    assert flash(response.text) == f"error: no failure {missing}"


@pytest.mark.parametrize(
    ("fields", "headers"),
    [
        ({}, {}),
        ({"token": "1700000000.deadbeef"}, {}),
        ({"token": "expired"}, {}),
        ({"token": "valid"}, {"Origin": "https://evil.example"}),
        ({"token": "valid"}, {"Sec-Fetch-Site": "cross-site"}),
    ],
    ids=["no-token", "forged-token", "expired-token", "cross-origin", "cross-site-fetch"],
)
@pytest.mark.parametrize("action", ["replay", "discard"])
def test_a_forged_form_is_refused_and_changes_nothing(
    client: TestClient, action: str, fields: dict[str, str], headers: dict[str, str]
) -> None:
    failure = make_failure()
    settings = get_settings()
    tokens = {
        "valid": issue_form_token(settings, OPERATOR),
        "expired": issue_form_token(settings, OPERATOR, now=time.time() - 13 * 3600),
    }
    data = {k: tokens.get(v, v) for k, v in fields.items()} | {"reason": "forged"}

    response = client.post(f"/ui/failures/{failure.id}/{action}", data=data, headers=headers)

    assert response.status_code == 403
    assert "did not come from the failures page" in response.text
    assert stored(failure.id).state == "open"
    assert events("failure.replayed") == events("failure.discarded") == []


def test_a_same_origin_post_with_a_valid_token_is_accepted(client: TestClient) -> None:
    failure = make_failure()

    response = client.post(
        f"/ui/failures/{failure.id}/replay",
        data={"token": form_token(client)},
        headers={"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"},
        follow_redirects=False,
    )

    assert response.status_code == 303
    assert stored(failure.id).state == "replayed"


def test_only_urlencoded_forms_are_read(client: TestClient) -> None:
    failure = make_failure()

    response = client.post(f"/ui/failures/{failure.id}/replay", json={"token": form_token(client)})

    assert response.status_code == 415
    assert stored(failure.id).state == "open"


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/ui/", "/orders/x"])
def test_after_an_action_the_page_never_redirects_off_the_failures_pages(
    client: TestClient, target: str
) -> None:
    failure = make_failure()

    response = client.post(
        f"/ui/failures/{failure.id}/discard",
        data={"token": form_token(client), "reason": "duplicate", "next": target},
        follow_redirects=False,
    )

    assert response.headers["location"] == "/ui/failures"


def test_crashed_failures_can_be_listed_on_their_own(client: TestClient) -> None:
    make_failure()
    crashed = make_failure(step="invoice", kind="crashed", http_status=None, code=None)

    response = client.get("/ui/failures", params={"kind": "crashed"})

    assert response.status_code == 200, response.text
    assert listed_ids(response.text) == {str(crashed.id)}


def test_an_order_is_corrected_on_its_page_after_a_diff_and_replayed(client: TestClient) -> None:
    failure = make_failure(step="fulfillment", code="undeliverable_address", http_status=422)
    page_url = f"/ui/orders/{failure.order_id}"
    shown = client.get(page_url)
    assert 'id="edit-form"' in shown.text
    token = form_token(client)
    with unit_of_work() as session:
        order = session.get(Order, failure.order_id)
        assert order is not None
        fields = {f"ship_to.{k}": str(v) for k, v in order.ship_to.items()}
        fields |= {f"customer.{k}": str(v) for k, v in order.customer.items()}
        old_code = order.ship_to["postal_code"]
    fields["ship_to.postal_code"] = "69002"
    edit = f"/ui/orders/{failure.order_id}/edit"

    preview = client.post(edit, data={**fields, "token": token, "reason": "right code"})

    assert preview.status_code == 200 and 'id="diff"' in preview.text
    assert "ship_to.postal_code" in preview.text and old_code in preview.text
    assert stored(failure.id).state == "open", "nothing changed before the confirmation"
    done = client.post(
        edit, data={**fields, "token": token, "reason": "right code", "confirm": "yes"}
    )
    assert flash(done.text) == "ok: Corrected ship_to.postal_code and replayed from fulfillment."
    assert stored(failure.id).state == "replayed"
    [amended] = events("order.amended")
    assert amended.detail["by"] == OPERATOR and amended.detail["reason"] == "right code"
    assert amended.detail["after"]["ship_to"]["postal_code"] == "69002"
    bad = client.post(
        edit,
        data={**fields, "ship_to.country": "XX", "token": token, "reason": "x", "confirm": "yes"},
    )
    assert flash(bad.text).startswith("error: Refused: ship_to.country")
