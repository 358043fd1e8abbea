"""A real headless Chromium for the operator pages' tests, signed in as the operator."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import (
    StaleElementReferenceException,
    TimeoutException,
    WebDriverException,
)
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.wait import WebDriverWait

from hub.demo.processes import ROOT
from hub.settings import get_settings
from tests.e2e.conftest import LOGS

SCREENSHOTS = ROOT / "var" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# As the machine notes say: without the background-networking flags Chromium keeps dialling
# hosts this closed network refuses.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1500,900",
)


@contextmanager
def chromium(profile: Path) -> Iterator[WebDriver]:
    """Debian's headless Chromium through its chromedriver; fails (never skips) without them."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if missing:
        pytest.fail(
            f"the failures-page test needs Debian's chromium and chromium-driver, and "
            f"{' and '.join(missing)} is missing: run `make browser` "
            "(apt-get install -y chromium chromium-driver)",
            pytrace=False,
        )
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    LOGS.mkdir(parents=True, exist_ok=True)
    service = Service(str(CHROMEDRIVER), log_output=str(LOGS / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()


def sign_in(driver: WebDriver) -> str:
    """Send the operator's basic credentials with every request of the tab; return the user."""
    settings = get_settings()
    assert settings.operator_user and settings.operator_password, "TEST_ENV sets them"
    pair = f"{settings.operator_user}:{settings.operator_password.get_secret_value()}"
    header = "Basic " + base64.b64encode(pair.encode()).decode()
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": header}})
    return settings.operator_user


def click_through(driver: WebDriver, element_id: str) -> None:
    """Click a button that submits a form, and wait until its answer has replaced the page:
    reading the next page before then finds the old page's elements (its flash message too),
    which go stale under the reader."""
    page = driver.find_element(By.TAG_NAME, "html")
    driver.find_element(By.ID, element_id).click()
    WebDriverWait(driver, 15).until(left_behind(page))


def left_behind(element: WebElement) -> Callable[[WebDriver], bool]:
    """Selenium's ``staleness_of``, also for Chromium 156, which answers a question about a node
    of the page it has just left with "Node with given id does not belong to the document" (an
    unknown error), not as a stale element."""

    def gone(_: WebDriver) -> bool:
        try:
            element.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as exc:
            if "does not belong to the document" in (exc.msg or ""):
                return True
            raise
        return False

    return gone


def flash_text(driver: WebDriver) -> str:
    try:
        element = WebDriverWait(driver, 15).until(
            expected_conditions.presence_of_element_located((By.ID, "flash"))
        )
    except TimeoutException:
        pytest.fail(
            f"no flash message at {driver.current_url}; the page says:\n"
            f"{driver.page_source[:3000]}",
            pytrace=False,
        )
    return str(element.text)
