"""The failures page during an outage, in a real headless Chromium at 1400 px.

Once it showed only the permanent failures while two breakers were open and dozens of orders
waited: no line saying a system was down, no link to the status page, nothing saying a replay
would wait; and at 1400 px the group buttons were cut off at the right edge.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By

from tests import support
from tests.e2e.browser import SCREENSHOTS, chromium, sign_in
from tests.e2e.conftest import Stack
from tests.e2e.test_operator_pages import breaker_state, failed, post_order, store_order

SCREENSHOT = SCREENSHOTS / "failures-outage.png"
WIDTH = 1400

# Every control a row offers, and whether any of it lies beyond the page's right edge (or the
# page scrolls sideways): one script, so a refresh cannot change the page between two reads.
CLIPPED = """
const page = document.documentElement, width = page.clientWidth, cut = [];
const controls = 'main a.button, main button, main input, main select';
for (const el of document.querySelectorAll(controls)) {
  const box = el.getBoundingClientRect();
  const name = el.id || el.textContent.trim();
  if (box.width && box.right > width + 0.5) cut.push(name + ' ends at ' + Math.round(box.right));
}
if (page.scrollWidth > width) cut.push('page is ' + page.scrollWidth + ' px wide');
return {width: width, cut: cut};
"""


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("SE_OFFLINE", "true")
    with chromium(tmp_path / "chromium-profile") as driver:
        sign_in(driver)
        driver.set_window_size(WIDTH, 900)
        yield driver


def test_the_failures_page_shows_the_outage_and_fits_1400_px(
    stack: Stack, browser: WebDriver
) -> None:
    # What the page listed before: permanent failures (skus the ERP has never heard of).
    refused = failed([store_order(f"OUT-{uuid.uuid4().hex[:8]}") for _ in range(2)])

    stack.sandbox.set_faults("erp", down=True)
    posted = [post_order(stack)]

    def opened() -> bool:
        if breaker_state("erp") == "open":
            return True
        posted.append(post_order(stack))
        return False

    try:
        support.wait_for(opened, timeout=120, interval=0.5, what="the ERP's breaker to open")
        browser.get(f"{stack.api_url}/ui/failures")

        banner = browser.find_element(By.ID, "down-system-erp")
        assert banner.is_displayed() and "erp looks down: its breaker is open" in banner.text
        summary = browser.find_element(By.ID, "outage-summary").text
        assert "under way wait" in summary and "without a failure record" in summary
        assert "A replay of a failure at erp waits behind its breaker" in summary
        link = browser.find_element(By.ID, "outage-status-link")
        assert link.get_attribute("href") == f"{stack.api_url}/ui/status"
        for failure in refused:  # the permanent failures are still listed, under the banner
            assert browser.find_element(By.ID, f"failure-{failure.id}").is_displayed()

        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        assert browser.save_screenshot(str(SCREENSHOT))
        print(f"screenshot: {SCREENSHOT}")
        measured = browser.execute_script(CLIPPED)
        assert measured["width"] <= WIDTH
        assert measured["cut"] == [], f"clipped at {measured['width']} px: {measured['cut']}"
    finally:
        stack.sandbox.clear_faults()
    support.wait_for(
        lambda: set(support.statuses(posted).values()) <= {"completed", "failed"},
        timeout=180,
        what="the orders posted during the outage to settle",
    )
