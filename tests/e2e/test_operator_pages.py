"""Failure groups and the status page in a real headless Chromium against the running hub.

Thirty orders fail for real, from three causes: ten are short of stock at the ERP (each its own
sku and quantity), ten order skus the ERP has never heard of, ten are refused by the warehouse.
The failures page shows three groups of ten. After a restock, "Replay group" on the short-stock
group, clicked again and confirmed from a second tab while it runs, completes each of its
orders exactly once (the sandbox ledgers say so). The status page, never reloaded, shows the ERP's
breaker open while the ERP is down and closed once it is back.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.wait import WebDriverWait
from sqlalchemy import select, text

from hub.core.schemas import OrderIn
from hub.db.engine import get_engine, unit_of_work
from hub.db.models import Failure, IntegrationEvent
from hub.services.intake import accept_order
from hub.services.replay import group_of
from hub.settings import get_settings
from tests import support
from tests.e2e.browser import SCREENSHOTS, chromium, click_through, flash_text, sign_in
from tests.e2e.conftest import Stack
from tests.factories import order_payload

GROUPS_SCREENSHOT = SCREENSHOTS / "failure-groups.png"
STATUS_SCREENSHOT = SCREENSHOTS / "status-page.png"


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    # Both paths are given, so Selenium Manager has nothing to look up; offline in any case.
    monkeypatch.setenv("SE_OFFLINE", "true")
    with chromium(tmp_path / "chromium-profile") as driver:
        sign_in(driver)
        yield driver


def store_order(sku: str, qty: int = 1) -> uuid.UUID:
    """Stored like intake stores it; the relay publishes it."""
    line = {"sku": sku, "qty": qty, "unit_price": str(Decimal("3.50"))}
    with unit_of_work() as session:
        accepted = accept_order(
            session,
            OrderIn.model_validate(order_payload(lines=[line])),
            idempotency_key=None,
            sender="tests",
        )
    return accepted.order_id


def open_failures(order_ids: list[uuid.UUID]) -> list[Failure]:
    with unit_of_work() as session:
        return list(
            session.scalars(
                select(Failure).where(Failure.order_id.in_(order_ids), Failure.state == "open")
            )
        )


def failed(order_ids: list[uuid.UUID]) -> list[Failure]:
    """The orders' open failures, once every rejected message has been dead-lettered too."""

    def settled() -> bool:
        with unit_of_work() as session:
            lettered = session.scalars(
                select(IntegrationEvent.order_id).where(
                    IntegrationEvent.order_id.in_(order_ids),
                    IntegrationEvent.event_type == "step.dead_lettered",
                )
            ).all()
        return len(open_failures(order_ids)) == len(order_ids) and set(lettered) == set(order_ids)

    support.wait_for(settled, timeout=90, what=f"{len(order_ids)} orders to fail")
    return open_failures(order_ids)


def close_earlier_failures() -> None:
    """Earlier tests of the package leave open failures of the same causes (out of stock):
    they would join these groups and change their counts."""
    with get_engine().begin() as connection:
        connection.execute(
            text(
                "UPDATE failures SET state = 'discarded', resolved_at = now(),"
                " resolved_by = 'e2e', resolution_reason = 'left by an earlier test'"
                " WHERE state = 'open'"
            )
        )


def one_group(failures: list[Failure]) -> str:
    [group] = {group_of(failure) for failure in failures}
    return group


def shown_groups(browser: WebDriver) -> dict[str, str]:
    rows = browser.find_elements(By.CSS_SELECTOR, "#groups tr[id^='group-']")
    return {
        str(row.get_attribute("id")).removeprefix("group-"): row.find_element(
            By.CSS_SELECTOR, "td.count"
        ).text
        for row in rows
    }


def test_thirty_failures_of_three_causes_and_a_group_replayed_once(
    stack: Stack, browser: WebDriver
) -> None:
    close_earlier_failures()
    run = uuid.uuid4().hex[:6]
    stack.sandbox.set_faults("warehouse", error_rate=1.0, status=422)
    refused = failed([store_order("SKU-003") for _ in range(10)])
    stack.sandbox.clear_faults()
    short_skus = [f"GRP{run}-{n:03d}" for n in range(10)]
    stack.sandbox.set_stock(dict.fromkeys(short_skus, 0))
    short = failed([store_order(sku, qty=1 + n % 3) for n, sku in enumerate(short_skus)])
    unknown = failed([store_order(f"UNK{run}-{n:03d}") for n in range(10)])
    short_group, unknown_group, refused_group = map(one_group, (short, unknown, refused))
    short_orders = [f.order_id for f in short]

    browser.get(f"{stack.api_url}/ui/failures")

    assert shown_groups(browser) == {short_group: "10", unknown_group: "10", refused_group: "10"}
    sample = browser.find_element(By.ID, f"group-{short_group}").text
    assert "<id>: # wanted, # available" in sample and "inventory" in sample
    assert "fulfillment" in browser.find_element(By.ID, f"group-{refused_group}").text
    GROUPS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(GROUPS_SCREENSHOT))
    print(f"screenshot: {GROUPS_SCREENSHOT}")

    stack.sandbox.set_stock(dict.fromkeys(short_skus, 10))
    click_through(browser, f"replay-group-{short_group}")
    question = browser.find_element(By.ID, "confirm-question").text
    assert question == f"Replay 10 failures of group {short_group}?"
    first_tab = browser.current_window_handle
    browser.switch_to.new_window("tab")
    sign_in(browser)
    browser.get(f"{stack.api_url}/ui/groups/{short_group}")
    click_through(browser, f"replay-group-{short_group}")
    second_tab = browser.current_window_handle
    browser.switch_to.window(first_tab)
    # One a second, so the second click and the second tab come while the replay still runs.
    rate = browser.find_element(By.ID, "rate")
    rate.clear()
    rate.send_keys("1")
    click_through(browser, "confirm")
    first_answer = flash_text(browser)
    browser.back()
    click_through(browser, "confirm")
    second_click = flash_text(browser)
    browser.switch_to.window(second_tab)
    click_through(browser, "confirm")
    second_tab_answer = flash_text(browser)

    print(f"first click: {first_answer}\nsecond click: {second_click}")
    print(f"second tab: {second_tab_answer}")
    assert first_answer.startswith(f"Replaying 10 failures of group {short_group} at 1 a second")
    for answer in (second_click, second_tab_answer):
        assert answer.startswith(f"A replay of group {short_group} is already under way"), answer
    support.wait_for(
        lambda: set(support.statuses(short_orders).values()) == {"completed"},
        timeout=120,
        what="the replayed group's orders to complete",
    )
    effects = stack.sandbox.effects_per_key()
    for step in get_settings().pipeline.steps:
        counts = [effects[step][f"{order}:{step}"] for order in short_orders]
        assert counts == [1] * 10, f"{step}: effects per order {counts}"
    with unit_of_work() as session:
        replays = Counter(
            session.scalars(
                select(IntegrationEvent.order_id).where(
                    IntegrationEvent.event_type == "failure.replayed",
                    IntegrationEvent.order_id.in_(short_orders),
                )
            )
        )
    assert replays == dict.fromkeys(short_orders, 1)
    operator = get_settings().operator_user
    assert {(f.state, f.resolved_by) for f in map(stored, short)} == {("replayed", operator)}
    browser.get(f"{stack.api_url}/ui/failures")
    assert shown_groups(browser) == {unknown_group: "10", refused_group: "10"}


def stored(failure: Failure) -> Failure:
    with unit_of_work() as session:
        row = session.get(Failure, failure.id)
    assert row is not None
    return row


def breaker_state(system: str) -> str:
    with get_engine().connect() as connection:
        state = connection.execute(
            text("SELECT state FROM breakers WHERE system = :system"), {"system": system}
        ).scalar()
    return str(state or "closed")


def shown_breaker(browser: WebDriver, system: str) -> str:
    # Read in one go in the page: a refresh may swap the row between two WebDriver calls.
    return str(
        browser.execute_script(
            "return document.getElementById(arguments[0]).dataset.state;", f"breaker-{system}"
        )
    )


def shown_breaker_text(browser: WebDriver, system: str) -> str:
    return str(
        browser.execute_script(
            "return document.getElementById(arguments[0]).innerText;", f"breaker-{system}"
        )
    )


def until_shown(browser: WebDriver, check: Callable[[WebDriver], bool], what: str) -> None:
    WebDriverWait(browser, 60, poll_frequency=0.5).until(check, message=what)


def post_order(stack: Stack) -> str:
    reply = requests.post(
        f"{stack.api_url}/orders", json=order_payload(), headers=stack.headers, timeout=10
    )
    assert reply.status_code == 202, reply.text
    return str(reply.json()["order_id"])


def test_the_status_page_shows_the_erp_breaker_open_while_it_is_down_and_closed_after(
    stack: Stack, browser: WebDriver
) -> None:
    browser.get(f"{stack.api_url}/ui/status?every=2")
    assert shown_breaker(browser, "erp") == "closed"
    # Gone if the page reloads: the refresh must happen in place.
    browser.execute_script("window.notReloaded = true;")

    stack.sandbox.set_faults("erp", down=True)
    posted = [post_order(stack)]

    def opened() -> bool:
        if breaker_state("erp") == "open":
            return True
        posted.append(post_order(stack))
        return False

    support.wait_for(opened, timeout=120, interval=0.5, what="the ERP's breaker to open")
    until_shown(browser, lambda b: shown_breaker(b, "erp") == "open", "the breaker shown open")

    erp = shown_breaker_text(browser, "erp")
    assert "open" in erp and "Z" in erp, f"open since and next call shown: {erp}"
    assert browser.execute_script("return window.notReloaded === true;")
    assert "erp looks down" in browser.find_element(By.ID, "live").text
    STATUS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(STATUS_SCREENSHOT))
    print(f"screenshot: {STATUS_SCREENSHOT}")

    stack.sandbox.clear_faults()

    until_shown(browser, lambda b: shown_breaker(b, "erp") == "closed", "the breaker closed")
    assert browser.execute_script("return window.notReloaded === true;")
    support.wait_for(
        lambda: set(support.statuses(posted).values()) <= {"completed", "failed"},
        timeout=120,
        what="the orders posted during the outage to settle",
    )
