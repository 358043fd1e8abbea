"""A long audit trail gives the same counters whether the relay folded it or not.

``/metrics`` reads the counts folded into ``audit_counts`` plus the audit rows after the fold's
mark: 200,000 audit rows written in bulk (one ``INSERT ... SELECT generate_series``) into a
database of their own show the same counters before the fold, after it, and as SQL counts them
over the whole trail. How long it takes at scale is ``make bench`` row i (``--only history``),
as a ratio to the same figure on an empty database: tests assert no timings.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from hub.db import migrate
from hub.db.engine import engine_for
from hub.entrypoints.api import create_api
from hub.settings import Settings, get_settings

BIG = 200_000
ORDERS = 1_000

_ORDERS = text(
    "INSERT INTO orders (id, sender, external_id, status, customer, ship_to, currency,"
    " pipeline, pipeline_version)"
    " SELECT gen_random_uuid(), 'bench', 'B-' || n,"
    " (ARRAY['completed', 'processing', 'failed'])[1 + n % 3], '{}', '{}', 'EUR',"
    ' \'["inventory", "fulfillment", "invoice"]\', \'history\''
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


def fold_all(settings: Settings) -> None:
    """Fold the trail as the relay does (its own process, on that database)."""
    subprocess.run(
        [
            sys.executable,
            "-c",
            "from hub.services import audit_rollup;"
            " audit_rollup.fold(batch=50_000, max_batches=100)",
        ],
        env={**os.environ, "HUB_DATABASE_URL": settings.database_url},
        check=True,
        timeout=300,
    )


COUNTERS = ("hub_orders_received_total", "hub_orders_completed_total", "hub_step_retries_total")


def counters(settings: Settings) -> dict[str, float]:
    """The counter lines of a scrape (and the step latency histogram's), by name and labels."""
    response = TestClient(create_api(settings)).get("/metrics")
    assert response.status_code == 200
    lines = [
        line
        for line in response.text.splitlines()
        if line.startswith((*COUNTERS, "hub_step_duration_seconds"))
    ]
    return {name: float(value) for name, value in (line.rsplit(" ", 1) for line in lines)}


def sql_count(settings: Settings, event_type: str) -> int:
    with engine_for(settings.database_url).connect() as connection:
        return int(
            connection.execute(
                text("SELECT count(*) FROM integration_events WHERE event_type = :t"),
                {"t": event_type},
            ).scalar_one()
        )


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


def test_the_counters_are_the_same_before_and_after_the_fold_of_a_long_trail(
    big: Settings,
) -> None:
    fill(big, BIG)
    unfolded = counters(big)
    assert unfolded["hub_orders_received_total"] == sql_count(big, "order.received")
    assert unfolded["hub_orders_completed_total"] == sql_count(big, "order.completed")
    assert unfolded["hub_orders_received_total"] == BIG / 5

    fold_all(big)
    with engine_for(big.database_url).connect() as connection:
        left = connection.execute(
            text(
                "SELECT count(*) FROM integration_events"
                " WHERE seq > (SELECT seq FROM audit_fold WHERE id = 1)"
            )
        ).scalar_one()
    assert left < BIG, "the fold counted rows into audit_counts"
    # Sums of durations are added in another order once folded: equal up to rounding.
    assert counters(big) == pytest.approx(unfolded, rel=1e-9)
