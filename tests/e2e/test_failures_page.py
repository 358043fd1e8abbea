"""The failures page in a real headless Chromium against the running hub: see, replay, discard.

Two orders fail for real (the sandbox ERP knows none of their skus: 409 out_of_stock, permanent).
The operator, signed in with basic auth, replays one after a restock and discards the other;
the replayed order then completes through the workers.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from sqlalchemy import select

from hub.core.schemas import OrderIn
from hub.db.engine import unit_of_work
from hub.db.models import Failure, IntegrationEvent
from hub.services.intake import accept_order
from tests import support
from tests.e2e.browser import SCREENSHOTS, chromium, click_through, flash_text, sign_in
from tests.e2e.conftest import Stack
from tests.factories import order_payload

SCREENSHOT = SCREENSHOTS / "failures-page.png"
ORDER_SCREENSHOT = SCREENSHOT.with_name("order-timeline.png")


def order_that_fails(sku: str) -> uuid.UUID:
    """Stored like intake stores it; the relay publishes it and the ERP refuses the sku."""
    line = {"sku": sku, "qty": 1, "unit_price": str(Decimal("3.50"))}
    with unit_of_work() as session:
        accepted = accept_order(
            session,
            OrderIn.model_validate(order_payload(lines=[line])),
            idempotency_key=None,
            sender="tests",
        )
    return accepted.order_id


def settled_failure(order_id: uuid.UUID) -> Failure:
    """The order's open failure, once its rejected message has also been dead-lettered."""

    def ready() -> bool:
        with unit_of_work() as session:
            failed = session.scalars(
                select(Failure).where(Failure.order_id == order_id, Failure.state == "open")
            ).one_or_none()
            lettered = session.scalars(
                select(IntegrationEvent.id).where(
                    IntegrationEvent.order_id == order_id,
                    IntegrationEvent.event_type == "step.dead_lettered",
                )
            ).first()
        return failed is not None and lettered is not None

    support.wait_for(ready, timeout=60, what=f"order {order_id} to fail at the ERP")
    with unit_of_work() as session:
        return session.scalars(
            select(Failure).where(Failure.order_id == order_id, Failure.state == "open")
        ).one()


def stored(failure_id: uuid.UUID) -> Failure:
    with unit_of_work() as session:
        failure = session.get(Failure, failure_id)
    assert failure is not None
    return failure


def rows(driver: WebDriver) -> set[str]:
    return {str(row.get_attribute("id")) for row in driver.find_elements(By.CSS_SELECTOR, "tr[id]")}


def test_an_operator_replays_and_discards_failures_in_a_real_browser(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Both paths are given, so Selenium Manager has nothing to look up; offline in any case.
    monkeypatch.setenv("SE_OFFLINE", "true")
    with chromium(tmp_path / "chromium-profile") as browser:
        operate(stack, browser)


def operate(stack: Stack, browser: WebDriver) -> None:
    replay_sku, discard_sku = (f"UI-{uuid.uuid4().hex[:10]}" for _ in range(2))
    to_replay = settled_failure(order_that_fails(replay_sku))
    to_discard = settled_failure(order_that_fails(discard_sku))
    operator = sign_in(browser)

    browser.get(f"{stack.api_url}/ui/failures?step=inventory&kind=permanent")

    assert {f"failure-{to_replay.id}", f"failure-{to_discard.id}"} <= rows(browser)
    row = browser.find_element(By.ID, f"failure-{to_replay.id}").text
    assert str(to_replay.order_id) in row and "out_of_stock" in row and replay_sku in row

    stack.sandbox.set_stock({replay_sku: 10})
    click_through(browser, f"replay-{to_replay.id}")

    assert flash_text(browser).startswith(
        f"Replayed inventory of order {to_replay.order_id}: queued"
    )
    assert f"failure-{to_replay.id}" not in rows(browser)
    assert f"failure-{to_discard.id}" in rows(browser)
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(SCREENSHOT))
    print(f"screenshot: {SCREENSHOT}")
    replayed = stored(to_replay.id)
    assert (replayed.state, replayed.resolved_by) == ("replayed", operator)

    browser.find_element(By.ID, f"reason-{to_discard.id}").send_keys("sku retired, order void")
    click_through(browser, f"discard-{to_discard.id}")

    # Discard cancels the order (nothing of it had succeeded: cancelled at once).
    assert flash_text(browser) == (
        f"Cancelled order {to_discard.order_id} (failure of inventory): what its steps did is "
        "undone, last first."
    )
    assert f"failure-{to_discard.id}" not in rows(browser)
    discarded = stored(to_discard.id)
    assert (discarded.state, discarded.resolved_by, discarded.resolution_reason) == (
        "cancelled",
        operator,
        "sku retired, order void",
    )

    support.wait_for(
        lambda: support.statuses([to_replay.order_id]) == {str(to_replay.order_id): "completed"},
        timeout=60,
        what="the replayed order to complete",
    )
    browser.get(f"{stack.api_url}/ui/orders/{to_replay.order_id}")
    assert browser.find_element(By.ID, "order-status").text == "completed"
    timeline = browser.find_element(By.ID, "timeline").text
    assert "failure.replayed" in timeline and "order.completed" in timeline
    browser.save_screenshot(str(ORDER_SCREENSHOT))
    print(f"screenshot: {ORDER_SCREENSHOT}")
