"""The PostgreSQL half of a snapshot: a few read-only queries in one short transaction, none of
them reading more of the audit trail than its rows not yet folded into counts."""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

from sqlalchemy import Connection, TextClause, bindparam, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from hub.db import audit
from hub.db.engine import engine_for
from hub.observability.health import PG_START, ServiceDown
from hub.observability.snapshot.facts import (
    LATENCY_BUCKETS,
    Breaker,
    BreakerWindow,
    DatabaseFacts,
    Latency,
)
from hub.settings import Settings

log = logging.getLogger("hub.snapshot")

_ORDERS = text("SELECT status, count(*) FROM orders GROUP BY status")


def event_counts(where: str) -> TextClause:
    """Audit rows matching ``where``, counted by event type and step (step '' for none), with
    step.succeeded's latency histogram: cumulative buckets straight from SQL (count of
    durations <= each bound). Bind ``succeeded`` and ``bucket_bounds()`` with it."""
    buckets = ", ".join(
        f"count(*) FILTER (WHERE s <= :le{i}) AS le{i}" for i in range(len(LATENCY_BUCKETS))
    )
    return text(
        "SELECT event_type, step, count(*) AS n, count(s) AS timed,"
        f" coalesce(sum(s), 0) AS total, {buckets}"
        " FROM (SELECT event_type, coalesce(step, '') AS step, CASE WHEN event_type = :succeeded"
        " THEN (detail ->> 'duration_ms')::float / 1000 END AS s"
        f" FROM integration_events WHERE {where}) AS e"
        " GROUP BY event_type, step"
    )


def bucket_bounds() -> dict[str, Any]:
    return {
        "succeeded": audit.STEP_SUCCEEDED,
        **{f"le{i}": bound for i, bound in enumerate(LATENCY_BUCKETS)},
    }


# The counters /metrics shows: what is folded already (audit_counts) plus the audit rows after
# the fold's mark, found by the seq index. Never a scan of the whole trail.
_FOLDED = text("SELECT coalesce((SELECT seq FROM audit_fold WHERE id = 1), 0)")
_COUNTED = text(
    "SELECT event_type, step, n, timed, total_seconds AS total, buckets FROM audit_counts"
    " WHERE event_type IN :types"
).bindparams(bindparam("types", expanding=True))
_NOT_FOLDED = event_counts("seq > :folded AND event_type IN :types").bindparams(
    bindparam("types", expanding=True)
)
COUNTED_EVENTS = (
    audit.RECEIVED,
    audit.COMPLETED,
    audit.FAILED,
    audit.RETRY_SCHEDULED,
    audit.STEP_SUCCEEDED,
    audit.CHAIN_REDRIVEN,
)

_OUTBOX = text(
    "SELECT count(*), coalesce(extract(epoch FROM clock_timestamp() - min(created_at)), 0)"
    " FROM outbox WHERE sent_at IS NULL"
)

_FAILURES = text(
    "SELECT step, error_kind, count(*) FROM failures WHERE state = 'open' GROUP BY step, error_kind"
)

# A window older than the breaker's counts nothing any more (the next failure starts anew).
_BREAKERS = text(
    "SELECT system, state, opened_at, retry_at, held,"
    " CASE WHEN window_started_at > now() - make_interval(secs => :window) THEN calls ELSE 0 END,"
    " CASE WHEN window_started_at > now() - make_interval(secs => :window)"
    " THEN failures ELSE 0 END"
    " FROM breakers"
)


def where(settings: Settings) -> str:
    url = make_url(settings.database_url)
    return f"{url.host or 'localhost'}:{url.port or 5432}/{url.database}"


def read_database(settings: Settings, *, timeout: float = 3.0) -> DatabaseFacts | ServiceDown:
    """Read the database's part of the snapshot, or say why it could not be read."""
    try:
        with engine_for(settings.database_url).connect() as connection, connection.begin():
            # Repeatable read: the folded counts and the rows after the fold's mark are read
            # in one snapshot, so a fold committing in between counts nothing twice.
            connection.execute(text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"))
            # A scrape must not hang behind a lock or a slow disk.
            connection.execute(
                text("SELECT set_config('statement_timeout', :ms, true)"),
                {"ms": str(int(timeout * 1000))},
            )
            return _facts(connection, window=settings.breaker.window)
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        log.info("snapshot: PostgreSQL not readable: %s", reason)
        if "does not exist" in reason:  # the database, or a table: not migrated
            hint = "make migrate"
        elif isinstance(exc, OperationalError):  # refused, gone, or too slow to answer
            hint = f"start it with: {PG_START}"
        else:  # it answered, and refused one of the snapshot's own queries
            hint = "PostgreSQL is up and refused a snapshot query: a bug in the hub, report it"
        return ServiceDown("PostgreSQL", where(settings), reason, hint)


def _facts(connection: Connection, *, window: float) -> DatabaseFacts:
    orders = {str(status): int(n) for status, n in connection.execute(_ORDERS)}
    folded = connection.execute(_FOLDED).scalar_one()
    types = list(COUNTED_EVENTS)
    rows = [*connection.execute(_COUNTED, {"types": types}).mappings()]
    rows += [
        _with_buckets(row)
        for row in connection.execute(
            _NOT_FOLDED, {"folded": folded, "types": types, **bucket_bounds()}
        ).mappings()
    ]
    counted = _count_events(rows)
    backlog, age = connection.execute(_OUTBOX).one()
    failures = {(str(step), str(kind)): int(n) for step, kind, n in connection.execute(_FAILURES)}
    breaker_results = connection.execute(_BREAKERS, {"window": window}).all()
    breaker_rows = {
        str(system): Breaker(str(state), opened_at, retry_at)
        for system, state, opened_at, retry_at, *_ in breaker_results
    }
    windows = {
        str(system): BreakerWindow(calls=int(calls), failures=int(failures), held=int(held))
        for system, _, _, _, held, calls, failures in breaker_results
    }
    return DatabaseFacts(
        orders_by_status=orders,
        outbox_backlog=int(backlog),
        outbox_oldest_age_seconds=float(age),
        failures_open=failures,
        breakers={system: row.state for system, row in breaker_rows.items()},
        breaker_rows=breaker_rows,
        breaker_windows=windows,
        **counted,
    )


def _with_buckets(row: Any) -> dict[str, Any]:
    """A row of ``event_counts`` in the shape of an ``audit_counts`` row."""
    return {
        **row,
        "buckets": [int(row[f"le{i}"]) for i in range(len(LATENCY_BUCKETS))],
    }


def _count_events(rows: list[Any]) -> dict[str, Any]:
    """Sum rows of ``audit_counts`` and of ``event_counts`` (the same event and step may come
    from both) into the snapshot's counters."""
    totals: dict[str, int] = defaultdict(int)
    retries: dict[str, int] = defaultdict(int)
    timed: dict[str, int] = defaultdict(int)
    seconds: dict[str, float] = defaultdict(float)
    buckets: dict[str, list[int]] = defaultdict(lambda: [0] * len(LATENCY_BUCKETS))
    for row in rows:
        kind, step, n = row["event_type"], row["step"], int(row["n"])
        if kind == audit.RETRY_SCHEDULED and step:
            retries[step] += n
        elif kind == audit.STEP_SUCCEEDED and step:
            timed[step] += int(row["timed"])
            seconds[step] += float(row["total"])
            for i, count in enumerate(row["buckets"] or []):
                buckets[step][i] += int(count)
        else:
            totals[kind] += n
    latency = {
        step: Latency(
            cumulative=(*buckets[step], timed[step]), count=timed[step], sum_seconds=seconds[step]
        )
        for step in timed
    }
    return {
        "orders_received": totals[audit.RECEIVED],
        "orders_completed": totals[audit.COMPLETED],
        "orders_failed": totals[audit.FAILED],
        "orders_redriven": totals[audit.CHAIN_REDRIVEN],
        "retries_by_step": dict(retries),
        "latency_by_step": latency,
    }
