"""A year of history costs a scrape nothing: ``/metrics`` answers about as fast with a million
audit rows as with a thousand (measured in the same run, as a ratio).

The million rows go into a database of their own (one ``INSERT ... SELECT generate_series``),
beside the tests' own, which holds the thousand; both have the same thousand orders.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from hub.db import migrate
from hub.db.engine import engine_for
from hub.entrypoints.api import create_api
from hub.settings import Settings, get_settings

SMALL, BIG = 1_000, 1_000_000
ORDERS = 1_000
SCRAPES = 9

_ORDERS = text(
    "INSERT INTO orders (id, sender, external_id, status, customer, ship_to, currency)"
    " SELECT gen_random_uuid(), 'bench', 'B-' || n,"
    " (ARRAY['completed', 'processing', 'failed'])[1 + n % 3], '{}', '{}', 'EUR'"
    " FROM generate_series(1, :orders) AS n"
)
# A realistic mix: each order's received, started, succeeded (with a duration), retried and
# completed rows, three months old.
_EVENTS = text(
    "WITH o AS (SELECT array_agg(id) AS ids FROM orders)"
    " INSERT INTO integration_events (id, event_type, status, created_at, order_id, step, detail)"
    " SELECT gen_random_uuid(),"
    "  (ARRAY['order.received', 'step.started', 'step.succeeded', 'step.retry_scheduled',"
    "   'order.completed'])[1 + n % 5], 'ok', now() - interval '90 days' + n * interval '1 ms',"
    "  o.ids[1 + n % :orders], (ARRAY['inventory', 'fulfillment', 'invoice'])[1 + n % 3],"
    "  jsonb_build_object('duration_ms', n % 900)"
    " FROM o, generate_series(1, :rows) AS n"
)


def other_database(settings: Settings, suffix: str) -> Settings:
    url = make_url(settings.database_url)
    name = f"{url.database}_{suffix}"
    return settings.model_copy(
        update={"database_url": url.set(database=name).render_as_string(hide_password=False)}
    )


def fill(settings: Settings, rows: int) -> None:
    with engine_for(settings.database_url).begin() as connection:
        connection.execute(
            text("TRUNCATE orders, integration_events, audit_counts, audit_fold CASCADE")
        )
        connection.execute(_ORDERS, {"orders": ORDERS})
        connection.execute(_EVENTS, {"orders": ORDERS, "rows": rows})
        connection.execute(text("ANALYZE"))


def fold_all(settings: Settings) -> float:
    """Fold the trail as the relay does (its own process, on that database); seconds taken."""
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from hub.services import audit_rollup;"
            " audit_rollup.fold(batch=250_000, max_batches=100)",
        ],
        env={**os.environ, "HUB_DATABASE_URL": settings.database_url},
        check=True,
        timeout=300,
    )
    return time.perf_counter() - started


def scrape_seconds(settings: Settings) -> float:
    client = TestClient(create_api(settings))
    assert client.get("/metrics").status_code == 200  # warm the pool and the caches
    times = []
    for _ in range(SCRAPES):
        started = time.perf_counter()
        response = client.get("/metrics")
        times.append(time.perf_counter() - started)
        assert response.status_code == 200
        assert "hub_orders_received_total" in response.text
    return statistics.median(times)


@pytest.fixture
def big() -> Iterator[Settings]:
    settings = other_database(get_settings(), "big")
    migrate.upgrade(settings.database_url)
    yield settings
    engine_for(settings.database_url).dispose()
    url = make_url(settings.database_url)
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
    admin.dispose()


def test_metrics_cost_the_same_with_a_million_audit_rows_as_with_a_thousand(
    big: Settings,
) -> None:
    small = get_settings()
    fill(small, SMALL)
    started = time.perf_counter()
    fill(big, BIG)
    filled_in = time.perf_counter() - started
    unfolded = scrape_seconds(big)

    folded_in = fold_all(big) + fold_all(small)
    small_s, big_s = scrape_seconds(small), scrape_seconds(big)

    ratio = big_s / small_s
    print(
        f"\n/metrics median of {SCRAPES}: {SMALL} audit rows {small_s * 1000:.1f} ms, "
        f"{BIG} rows {big_s * 1000:.1f} ms (ratio {ratio:.2f}); "
        f"before folding {unfolded * 1000:.0f} ms; filled in {filled_in:.1f} s, "
        f"folded in {folded_in:.1f} s"
    )
    assert ratio < 2.0, f"a million rows made /metrics {ratio:.1f}x slower"
