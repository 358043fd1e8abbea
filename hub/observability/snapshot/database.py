"""The PostgreSQL half of a snapshot: five read-only queries in one short transaction."""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from hub.db import audit
from hub.db.engine import engine_for
from hub.observability.health import PG_START, ServiceDown
from hub.observability.snapshot.facts import LATENCY_BUCKETS, Breaker, DatabaseFacts, Latency
from hub.settings import Settings

log = logging.getLogger("hub.snapshot")

_ORDERS = text("SELECT status, count(*) FROM orders GROUP BY status")

# One pass over the audit trail gives the order counters, the retries and the latency
# histograms (cumulative buckets straight from SQL: count of durations <= each bound).
_EVENTS = text(
    "SELECT event_type, step, count(*) AS n, count(s) AS timed, coalesce(sum(s), 0) AS total, "
    + ", ".join(
        f"count(*) FILTER (WHERE s <= :le{i}) AS le{i}" for i in range(len(LATENCY_BUCKETS))
    )
    + " FROM (SELECT event_type, step, CASE WHEN event_type = :succeeded"
    " THEN (detail ->> 'duration_ms')::float / 1000 END AS s"
    " FROM integration_events"
    " WHERE event_type IN (:received, :completed, :failed, :retry, :succeeded)) AS e"
    " GROUP BY event_type, step"
)

_OUTBOX = text(
    "SELECT count(*), coalesce(extract(epoch FROM clock_timestamp() - min(created_at)), 0)"
    " FROM outbox WHERE sent_at IS NULL"
)

_FAILURES = text(
    "SELECT step, error_kind, count(*) FROM failures WHERE state = 'open' GROUP BY step, error_kind"
)

_BREAKERS = text("SELECT system, state, opened_at, retry_at FROM breakers")


def where(settings: Settings) -> str:
    url = make_url(settings.database_url)
    return f"{url.host or 'localhost'}:{url.port or 5432}/{url.database}"


def read_database(settings: Settings, *, timeout: float = 3.0) -> DatabaseFacts | ServiceDown:
    """Read the database's part of the snapshot, or say why it could not be read."""
    try:
        with engine_for(settings.database_url).connect() as connection, connection.begin():
            connection.execute(text("SET TRANSACTION READ ONLY"))
            # A scrape must not hang behind a lock or a slow disk.
            connection.execute(
                text("SELECT set_config('statement_timeout', :ms, true)"),
                {"ms": str(int(timeout * 1000))},
            )
            return _facts(connection)
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        log.info("snapshot: PostgreSQL not readable: %s", reason)
        missing = "does not exist" in reason  # the database, or a table: not migrated
        hint = "make migrate" if missing else f"start it with: {PG_START}"
        return ServiceDown("PostgreSQL", where(settings), reason, hint)


def _facts(connection: Connection) -> DatabaseFacts:
    orders = {str(status): int(n) for status, n in connection.execute(_ORDERS)}
    events = connection.execute(
        _EVENTS,
        {
            "succeeded": audit.STEP_SUCCEEDED,
            "received": audit.RECEIVED,
            "completed": audit.COMPLETED,
            "failed": audit.FAILED,
            "retry": audit.RETRY_SCHEDULED,
            **{f"le{i}": bound for i, bound in enumerate(LATENCY_BUCKETS)},
        },
    ).mappings()
    counted = _count_events(list(events))
    backlog, age = connection.execute(_OUTBOX).one()
    failures = {(str(step), str(kind)): int(n) for step, kind, n in connection.execute(_FAILURES)}
    breaker_rows = {
        str(system): Breaker(str(state), opened_at, retry_at)
        for system, state, opened_at, retry_at in connection.execute(_BREAKERS)
    }
    return DatabaseFacts(
        orders_by_status=orders,
        outbox_backlog=int(backlog),
        outbox_oldest_age_seconds=float(age),
        failures_open=failures,
        breakers={system: row.state for system, row in breaker_rows.items()},
        breaker_rows=breaker_rows,
        **counted,
    )


def _count_events(rows: list[Any]) -> dict[str, Any]:
    totals: dict[str, int] = defaultdict(int)
    retries: dict[str, int] = defaultdict(int)
    latency: dict[str, Latency] = {}
    for row in rows:
        kind, step, n = row["event_type"], row["step"], int(row["n"])
        if kind == audit.RETRY_SCHEDULED and step:
            retries[step] += n
        elif kind == audit.STEP_SUCCEEDED and step:
            timed = int(row["timed"])
            buckets = tuple(int(row[f"le{i}"]) for i in range(len(LATENCY_BUCKETS)))
            latency[step] = Latency(
                cumulative=(*buckets, timed), count=timed, sum_seconds=float(row["total"])
            )
        else:
            totals[kind] += n
    return {
        "orders_received": totals[audit.RECEIVED],
        "orders_completed": totals[audit.COMPLETED],
        "orders_failed": totals[audit.FAILED],
        "retries_by_step": dict(retries),
        "latency_by_step": latency,
    }
