"""Correct, then replay, on real workers: a warehouse refuses an address for good; the operator
edits the postal code (``hub orders edit``: the diff shown, confirmed) and the order completes
with the new address in the warehouse's ledger, the audit holding before and after."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from tests import support
from tests.e2e.browser import chromium, click_through, flash_text, sign_in
from tests.e2e.conftest import Stack
from tests.e2e.test_failures import events, hub, post_one, view, wait_failed
from tests.e2e.test_flow import assert_exactly_once, wait_completed
from tests.factories import order_payload


def refused_address(stack: Stack) -> str:
    """An order the warehouse refused for good (its postal code), its dead letter recorded."""
    ship_to = {**order_payload()["ship_to"], "postal_code": "00013"}  # undeliverable (sandbox)
    order_id = post_one(stack, ship_to=ship_to)
    failure = wait_failed(order_id)
    assert failure["step"] == "fulfillment" and failure["error_code"] == "undeliverable_address"
    support.wait_for(  # else the dead letter, arriving after the replay, is recorded anew
        lambda: bool(events(stack, order_id, "step.dead_lettered")),
        timeout=30,
        what="the rejected message to reach the failure queue and be recorded",
    )
    return order_id


def shipped_postal_code(stack: Stack, order_id: str) -> str:
    """The postal code of the order's one shipment in the warehouse's own ledger."""
    [shipment] = [
        e
        for e in stack.sandbox.ledger("warehouse")["effects"]
        if e["idempotency_key"] == f"{order_id}:fulfillment"
    ]
    return str(shipment["ship_to"]["postal_code"])


def test_an_address_refused_for_good_is_corrected_and_the_order_completes(stack: Stack) -> None:
    order_id = refused_address(stack)

    refused = hub("orders", "edit", order_id, "--set", "ship_to.country=XX", "--reason", "typo")
    assert refused.returncode == 1 and "ship_to.country" in refused.stderr + refused.stdout
    declined = subprocess.run(
        [
            sys.executable,
            "-m",
            "hub",
            "orders",
            "edit",
            order_id,
            "--set",
            "ship_to.postal_code=69002",
            "--reason",
            "customer called",
        ],
        input="n\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert declined.returncode == 1 and "00013" in declined.stdout and "69002" in declined.stdout
    assert view(stack, order_id)["status"] == "failed"

    edited = hub(
        "orders",
        "edit",
        order_id,
        "--set",
        "ship_to.postal_code=69002",
        "--reason",
        "customer called",
        "--yes",
        "--operator",
        "ops-ann",
    )

    assert edited.returncode == 0, edited.stdout + edited.stderr
    assert "replayed from fulfillment" in edited.stdout
    wait_completed([order_id], timeout=60)
    assert_exactly_once(stack, [order_id])
    assert shipped_postal_code(stack, order_id) == "69002"
    [amended] = events(stack, order_id, "order.amended")
    assert amended["detail"]["by"] == "ops-ann" and amended["detail"]["reason"] == "customer called"
    assert amended["detail"]["before"]["ship_to"]["postal_code"] == "00013"
    assert amended["detail"]["after"]["ship_to"]["postal_code"] == "69002"
    # Now the shipment used the address: another edit is refused, naming the rule.
    late = hub("orders", "edit", order_id, "--set", "ship_to.city=Paris", "--reason", "x", "--yes")
    assert late.returncode == 1 and "order" in late.stderr + late.stdout
    assert support.statuses([order_id])[order_id] == "completed"


def test_the_operator_corrects_the_postal_code_on_the_order_page_in_a_real_browser(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    order_id = refused_address(stack)
    monkeypatch.setenv("SE_OFFLINE", "true")  # both paths given: nothing for Selenium to fetch
    with chromium(tmp_path / "chromium-profile") as browser:
        operator = sign_in(browser)
        browser.get(f"{stack.api_url}/ui/orders/{order_id}")
        postal = browser.find_element(By.ID, "edit-ship_to-postal_code")
        assert postal.get_attribute("value") == "00013"
        postal.clear()
        postal.send_keys("69002")
        browser.find_element(By.ID, "edit-reason").send_keys("customer called")
        click_through(browser, "edit-preview")

        # The diff is shown first; nothing has changed yet.
        diff = browser.find_element(By.ID, "diff").text
        assert "ship_to.postal_code 00013 69002" in diff, diff
        assert "ship_to.city" not in diff
        assert view(stack, order_id)["status"] == "failed"
        assert not events(stack, order_id, "order.amended")

        click_through(browser, "confirm")
        assert flash_text(browser) == "Corrected ship_to.postal_code and replayed from fulfillment."

    wait_completed([order_id], timeout=60)
    assert_exactly_once(stack, [order_id])
    assert shipped_postal_code(stack, order_id) == "69002"
    [amended] = events(stack, order_id, "order.amended")
    assert amended["detail"]["by"] == operator and amended["detail"]["reason"] == "customer called"
    assert amended["detail"]["before"]["ship_to"]["postal_code"] == "00013"
    assert amended["detail"]["after"]["ship_to"]["postal_code"] == "69002"
