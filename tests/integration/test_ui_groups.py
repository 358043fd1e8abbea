"""Failure groups and bulk actions on the page, on real PostgreSQL and RabbitMQ."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from hub.core.failure_groups import GroupKey
from hub.db.engine import unit_of_work
from hub.db.models import Failure, IntegrationEvent, OutboxMessage
from hub.entrypoints.api import create_api
from hub.entrypoints.ui.bulk import BulkReplays
from hub.entrypoints.ui.operator_auth import issue_form_token
from hub.settings import get_settings
from tests import support
from tests.support import make_failure

OPERATOR = "test-operator"
STOCK_GROUP = GroupKey.of(
    step="inventory", kind="permanent", code="out_of_stock", message="SKU-1: 1 wanted, 0 available"
).group_id


@pytest.fixture
def client() -> TestClient:
    client = TestClient(create_api())
    password = get_settings().operator_password
    assert password is not None
    client.auth = (OPERATOR, password.get_secret_value())
    return client


def out_of_stock(n: int) -> Failure:
    return make_failure(message=f"SKU-{n:03d}: {n + 1} wanted, 0 available")


def states(failures: list[Failure]) -> list[str]:
    with unit_of_work() as session:
        return [
            session.scalars(select(Failure.state).where(Failure.id == f.id)).one() for f in failures
        ]


def settled(failures: list[Failure], expected: list[str]) -> None:
    """Wait for a bulk replay (it runs on after the page's answer) to leave these states."""
    support.wait_for(
        lambda: states(failures) == expected, timeout=10, what=f"failures to be {expected}"
    )


def flash(page: str) -> str:
    found = re.search(r'<p class="flash (\w+)" id="flash" role="status">([^<]*)</p>', page)
    assert found, "the page shows a flash message"
    return f"{found.group(1)}: {found.group(2)}"


def confirmed(client: TestClient, url: str, **changes: str) -> dict[str, str]:
    """The fields the confirmation page at ``url`` would post."""
    page = client.get(url).text
    hidden = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', page))
    return hidden | {"rate": "50"} | changes


def replays() -> list[IntegrationEvent]:
    with unit_of_work() as session:
        return list(
            session.scalars(
                select(IntegrationEvent).where(IntegrationEvent.event_type == "failure.replayed")
            )
        )


def test_the_page_shows_the_groups_first_with_count_sample_and_orders(client: TestClient) -> None:
    stock = [out_of_stock(n) for n in range(4)]
    make_failure(message="unknown sku ZZ-1")

    page = client.get("/ui/failures").text

    assert page.index('id="groups"') < page.index('id="failures"')
    assert re.findall(r'<tr id="group-(\w+)"', page)[0] == STOCK_GROUP, "largest group first"
    row = page.split(f'id="group-{STOCK_GROUP}"')[1].split("</tr>")[0]
    assert '<td class="count">4</td>' in row
    assert "&lt;id&gt;: # wanted, # available" in row
    assert "SKU-003: 4 wanted, 0 available" in row, "the newest failure is the sample"
    assert all(f'href="/ui/orders/{f.order_id}"' in row for f in stock[:3])
    assert "and 1 more" in row
    assert f'href="/ui/groups/{STOCK_GROUP}/replay"' in row
    assert 'id="replay-shown"' in page and "Replay these 5" in page


def test_a_group_page_lists_its_failures_and_orders_only(client: TestClient) -> None:
    stock = [out_of_stock(n) for n in range(2)]
    other = make_failure(message="unknown sku ZZ-1")

    page = client.get(f"/ui/groups/{STOCK_GROUP}")

    assert page.status_code == 200
    listed = set(re.findall(r'<tr id="failure-([0-9a-f-]{36})"', page.text))
    assert listed == {str(f.id) for f in stock}
    assert str(other.order_id) not in page.text
    assert 'id="group-count">2<' in page.text
    assert client.get("/ui/groups/000000000000").status_code == 404
    assert client.get("/ui/groups/not-a-group").status_code == 404


def test_the_confirmation_states_how_many_and_replays_the_group_once(client: TestClient) -> None:
    stock = [out_of_stock(n) for n in range(3)]
    other = make_failure(message="unknown sku ZZ-1")
    url = f"/ui/groups/{STOCK_GROUP}/replay"
    assert "Replay 3 failures of group" in client.get(url).text
    form = confirmed(client, url)

    done = client.post(url, data=form)

    assert flash(done.text).startswith(f"ok: Replaying 3 failures of group {STOCK_GROUP} at 50")
    settled([*stock, other], ["replayed"] * 3 + ["open"])
    assert {e.detail["operator"] for e in replays()} == {OPERATOR}
    assert {e.detail["reason"] for e in replays()} == {
        f"replayed group {STOCK_GROUP} from the failures page"
    }

    def published() -> int:
        with unit_of_work() as session:
            rows = session.scalars(
                select(OutboxMessage).where(OutboxMessage.start_step == "inventory")
            ).all()
        return sum(1 for row in rows if row.sent_at is not None)

    support.wait_for(lambda: published() == 3, timeout=10, what="the 3 replays published")

    again = client.post(url, data=form)

    assert flash(again.text) == (
        f"info: Nothing to replay: the failures of group {STOCK_GROUP} are no longer open."
    )
    assert len(replays()) == 3
    assert support.queue_depth(support.work_queue_names()[0]) == 3


def test_a_second_click_while_the_group_replays_is_told_so_and_adds_nothing(
    client: TestClient,
) -> None:
    stock = [out_of_stock(n) for n in range(3)]
    url = f"/ui/groups/{STOCK_GROUP}/replay"
    form = confirmed(client, url, rate="1")

    client.post(url, data=form)
    again = client.post(url, data=form)

    assert flash(again.text).startswith(
        f"info: A replay of group {STOCK_GROUP} is already under way (started by {OPERATOR} at"
    )
    settled(stock, ["replayed"] * 3)
    assert len(replays()) == 3


def test_failures_that_arrive_after_the_confirmation_are_left_alone(client: TestClient) -> None:
    seen = out_of_stock(1)
    url = f"/ui/groups/{STOCK_GROUP}/replay"
    form = confirmed(client, url)
    # The late failure opens after the moment the confirmation counted up to.
    as_of = datetime.fromisoformat(form["as_of"])
    support.wait_for(lambda: datetime.now(UTC) > as_of, timeout=5, what="the clock to pass as_of")
    late = out_of_stock(2)

    client.post(url, data=form)

    settled([seen, late], ["replayed", "open"])


def test_a_second_bulk_replay_of_a_running_scope_starts_nothing() -> None:
    published: list[int] = []
    bulk = BulkReplays(lambda outbox_id: published.append(outbox_id) is None)
    stock = [out_of_stock(n) for n in range(3)]
    ids = [f.id for f in stock]

    assert bulk.start("group:x", ids, operator="ops", reason="r", per_second=2) is None
    running = bulk.start("group:x", ids, operator="other", reason="r", per_second=50)

    assert running is not None and (running.operator, running.total) == ("ops", 3)
    settled(stock, ["replayed"] * 3)
    support.wait_for(lambda: bulk.running("group:x") is None, timeout=5, what="the release")
    assert len(published) == 3 and len(replays()) == 3
    assert {e.detail["operator"] for e in replays()} == {"ops"}


def test_a_group_discard_needs_a_reason_and_records_it(client: TestClient) -> None:
    stock = [out_of_stock(n) for n in range(2)]
    other = make_failure(message="unknown sku ZZ-1")
    url = f"/ui/groups/{STOCK_GROUP}/discard"
    assert "Discard 2 failures of group" in client.get(url).text

    refused = client.post(url, data=confirmed(client, url, reason="  "))
    assert flash(refused.text) == "error: Discard needs a reason; nothing done."
    assert states(stock) == ["open", "open"]

    done = client.post(url, data=confirmed(client, url, reason="skus retired"))

    assert flash(done.text) == f"ok: Cancelled the orders of 2 failures of group {STOCK_GROUP}."
    assert states([*stock, other]) == ["cancelled", "cancelled", "open"]
    with unit_of_work() as session:
        rows = [session.get(Failure, f.id) for f in stock]
    assert {(r.resolved_by, r.resolution_reason) for r in rows if r} == {(OPERATOR, "skus retired")}


def test_a_group_close_ends_its_orders_without_compensating(client: TestClient) -> None:
    stock = [out_of_stock(n) for n in range(2)]
    url = f"/ui/groups/{STOCK_GROUP}/close"
    assert "Close 2 failures of group" in client.get(url).text

    done = client.post(url, data=confirmed(client, url, reason="done by hand"))

    assert flash(done.text) == (
        f"ok: Closed without compensating the orders of 2 failures of group {STOCK_GROUP}."
    )
    assert states(stock) == ["closed", "closed"]


def test_replay_what_the_filter_shows(client: TestClient) -> None:
    inventory = [out_of_stock(n) for n in range(2)]
    fulfillment = make_failure(step="fulfillment", message="warehouse refused", code="refused")
    url = "/ui/failures/replay?step=inventory"
    confirmation = client.get(url).text
    assert "Replay 2 failures of the failures shown (step inventory)?" in confirmation
    assert 'href="/ui/failures?step=inventory" id="cancel"' in confirmation

    done = client.post("/ui/failures/replay", data=confirmed(client, url))

    assert flash(done.text).startswith("ok: Replaying 2 failures of the failures shown")
    settled([*inventory, fulfillment], ["replayed", "replayed", "open"])


def test_a_forged_bulk_action_is_refused(client: TestClient) -> None:
    stock = [out_of_stock(n) for n in range(2)]
    url = f"/ui/groups/{STOCK_GROUP}/replay"
    form = confirmed(client, url)
    expired = issue_form_token(get_settings(), OPERATOR, now=time.time() - 13 * 3600)

    for data, headers in (
        (form | {"token": "1700000000.deadbeef"}, {}),
        (form | {"token": expired}, {}),
        (form, {"Origin": "https://evil.example"}),
    ):
        response = client.post(url, data=data, headers=headers)
        assert response.status_code == 403
    shown = client.post("/ui/failures/replay", data=form, headers={"Sec-Fetch-Site": "cross-site"})
    assert shown.status_code == 403
    assert states(stock) == ["open", "open"]


def test_a_garbled_confirmation_changes_nothing(client: TestClient) -> None:
    stock = [out_of_stock(n) for n in range(2)]
    url = f"/ui/groups/{STOCK_GROUP}/replay"
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()

    for changes in ({"as_of": "yesterday"}, {"rate": "0"}, {"rate": "1e9"}):
        response = client.post(url, data=confirmed(client, url, **changes))
        assert flash(response.text) == "error: The confirmation was garbled; reload it."
    assert states(stock) == ["open", "open"]
    # A moment in the future only admits what exists: still exactly these two.
    client.post(url, data=confirmed(client, url, as_of=tomorrow))
    settled(stock, ["replayed", "replayed"])


def test_group_text_from_downstream_is_escaped(client: TestClient) -> None:
    failure = make_failure(message='<script>alert("x")</script> SKU-1', code="<b>c</b>")
    group = GroupKey.of(
        step="inventory", kind="permanent", code="<b>c</b>", message=failure.message
    ).group_id

    for url in ("/ui/failures", f"/ui/groups/{group}", f"/ui/groups/{group}/replay"):
        page = client.get(url).text
        assert "<script>alert" not in page and "<b>c</b>" not in page, url
        assert "&lt;script&gt;" in page, url
