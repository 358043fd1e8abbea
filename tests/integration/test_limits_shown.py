"""A system cooling after a 429, and one holding slots: what ``/metrics``, ``hub status`` and the
status page show of it, read from real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from hub.core.limits import SystemLimits
from hub.db import limits
from hub.db.engine import unit_of_work
from hub.entrypoints.api import create_api
from hub.entrypoints.cli.main import cli
from hub.settings import get_settings
from tests.integration.test_metrics import scrape
from tests.integration.test_ui_status import signed_in


@pytest.fixture
def throttled_erp_busy_warehouse(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The ERP answered a 429 with Retry-After: 60; the warehouse (limit 4) has 2 calls in
    flight and a step waiting for a slot."""
    monkeypatch.setenv("HUB_WAREHOUSE_MAX_IN_FLIGHT", "4")
    get_settings.cache_clear()
    settings = get_settings()
    with unit_of_work() as session:
        limits.throttled(
            session, "erp", retry_after=60, limits=SystemLimits(), policy=settings.throttle
        )
    four = SystemLimits(max_in_flight=4)
    for n in range(2):
        with unit_of_work() as session:
            limits.acquire(
                session,
                "warehouse",
                holder=f"order-{n}:fulfillment",
                limits=four,
                policy=settings.throttle,
                lease=30,
            )
    with unit_of_work() as session:
        crowded = SystemLimits(max_in_flight=2)  # as if the other two slots were taken too
        wait = limits.acquire(
            session,
            "warehouse",
            holder="late:fulfillment",
            limits=crowded,
            policy=settings.throttle,
            lease=30,
        )
    assert isinstance(wait, limits.Wait)
    yield
    get_settings.cache_clear()


def test_metrics_show_cooling_rate_slots_waiting_and_429s(
    throttled_erp_busy_warehouse: None,
) -> None:
    metrics = scrape(TestClient(create_api()))

    assert metrics[("hub_system_cooling", (("system", "erp"),))] == 1
    assert metrics[("hub_system_cooling", (("system", "warehouse"),))] == 0
    assert metrics[("hub_system_throttled_total", (("system", "erp"),))] == 1
    # Halved from the start rate by the 429, grown back a little since.
    halved = get_settings().throttle.start_rate * get_settings().throttle.decrease
    assert halved <= metrics[("hub_system_rate_limit", (("system", "erp"),))] < halved + 2
    assert ("hub_system_rate_limit", (("system", "warehouse"),)) not in metrics
    assert metrics[("hub_system_calls_in_flight", (("system", "warehouse"),))] == 2
    assert metrics[("hub_system_steps_waiting", (("system", "warehouse"),))] == 1
    assert metrics[("hub_system_calls_in_flight", (("system", "accounting"),))] == 0


def test_hub_status_shows_the_cooling_and_the_slots(throttled_erp_busy_warehouse: None) -> None:
    result = CliRunner().invoke(cli, ["status"], terminal_width=200)

    assert result.exit_code == 0, result.output
    erp = next(line for line in result.output.splitlines() if " erp " in line)
    assert "cooling (429) until" in erp and "calls/s" in erp
    warehouse = next(line for line in result.output.splitlines() if " warehouse " in line)
    assert "2 in flight, 1 waiting" in warehouse


def test_the_status_page_says_the_erp_is_cooling(throttled_erp_busy_warehouse: None) -> None:
    html = signed_in(TestClient(create_api())).get("/ui/status").text

    assert 'id="cooling-system-erp"' in html
    assert "erp is cooling: it answered 429" in html
    assert 'id="cooling-system-warehouse"' not in html
    erp = html.split('id="limits-erp">')[1].split("</td>")[0]
    assert erp.startswith("cooling (429) until ") and "calls/s" in erp
    warehouse = html.split('id="limits-warehouse">')[1].split("</td>")[0]
    assert warehouse == "2 in flight, 1 waiting"
