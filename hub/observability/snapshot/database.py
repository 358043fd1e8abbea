"""The PostgreSQL half of a snapshot: a few read-only queries in one short transaction, none of
them reading more of the audit trail than its rows not yet folded into counts."""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection, TextClause, bindparam, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from hub.core.statuses import OrderStatus
from hub.db import audit, limits
from hub.db.engine import engine_for
from hub.db.unavailable import is_statement_timeout
from hub.db.unavailable import where as database_where
from hub.observability.diagnosis import postgres_hint
from hub.observability.health import ServiceDown, SlowQuery
from hub.observability.snapshot.facts import (
    LATENCY_BUCKETS,
    Breaker,
    BreakerWindow,
    DatabaseFacts,
    Latency,
    SystemLimit,
)
from hub.settings import Settings

log = logging.getLogger("hub.snapshot")

# Orders by status, never a count of the whole table (a year of history is millions of
# completed orders, and counting them took a second on every snapshot): each status is counted
# exactly by the status index up to ORDER_COUNT_LIMIT rows; a status past it (in practice
# completed, the settled bulk) is PostgreSQL's estimate, the table's rows (pg_class.reltuples,
# kept by autovacuum and ANALYZE) less the exact counts, shared by the statuses' frequencies
# (pg_stats) when more than one is past it. In-flight statuses, which operators and alerts
# watch, stay exact unless tens of thousands of orders are stuck.
ORDER_COUNT_LIMIT = 20_000
_ORDERS_CAPPED = text(
    " UNION ALL ".join(
        f"SELECT '{status}' AS status, (SELECT count(*) FROM (SELECT 1 FROM orders"
        f" WHERE status = '{status}' LIMIT :cap) AS capped) AS n"
        for status in OrderStatus
    )
)
_ORDERS_ESTIMATE = text(
    "SELECT c.reltuples, s.most_common_vals::text::text[], s.most_common_freqs"
    " FROM pg_class AS c LEFT JOIN pg_stats AS s ON s.schemaname = current_schema()"
    " AND s.tablename = 'orders' AND s.attname = 'status'"
    " WHERE c.oid = to_regclass('orders')"
)
# SQLite (trial mode) has no estimates, and a trial never holds many orders.
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
_NOT_FOLDED = event_counts("seq > :folded AND seq <= :upto AND event_type IN :types").bindparams(
    bindparam("types", expanding=True)
)
# The first and newest audit rows after the mark, from the seq index: how far the fold is
# behind (seq has gaps, from rolled-back inserts, so this is an upper bound).
_AFTER_MARK = text("SELECT min(seq), max(seq) FROM integration_events WHERE seq > :folded")
# Audit rows after the fold's mark a snapshot counts at most: however far the fold fell behind
# (the relay down for a while, a restored database), a scrape reads a bounded range of the seq
# index; counts past it wait for the fold, and the snapshot says how many rows that is.
UNFOLDED_READ_LIMIT = 200_000
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
    return database_where(make_url(settings.database_url))


class Queries:
    """Runs the snapshot's queries, each under a name: a statement timeout says which one."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.current = ""

    def run(self, name: str, clause: TextClause, params: dict[str, Any] | None = None) -> Any:
        self.current = name
        return self.connection.execute(clause, params or {})


def read_database(
    settings: Settings, *, timeout: float = 3.0, unfolded_limit: int = UNFOLDED_READ_LIMIT
) -> DatabaseFacts | ServiceDown:
    """Read the database's part of the snapshot, or say why it could not be read."""
    queries: Queries | None = None
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
            queries = Queries(connection)
            facts = _facts(queries, window=settings.breaker.window, unfolded_limit=unfolded_limit)
            queries.current = "system limits"
            return replace(facts, limits=_limits(connection, settings))
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        if is_statement_timeout(exc) and queries is not None:
            log.warning("snapshot: query %r ran past %s s: %s", queries.current, timeout, reason)
            return SlowQuery(
                "PostgreSQL",
                where(settings),
                reason,
                "a slow query, not a server down: a lock held (pg_locks), a long audit trail "
                "not yet folded (the relay folds it), or a table to index (EXPLAIN it)",
                answered=True,
                query=queries.current,
                timeout=timeout,
            )
        log.info("snapshot: PostgreSQL not readable: %s", reason)
        if "does not exist" in reason:  # the database, or a table: not migrated
            hint = "make migrate"
        elif isinstance(exc, OperationalError):  # refused, gone, a wrong password, too slow
            hint = postgres_hint(reason).hint
        else:  # it answered, and refused one of the snapshot's own queries
            hint = "PostgreSQL is up and refused a snapshot query: a bug in the hub, report it"
        return ServiceDown("PostgreSQL", where(settings), reason, hint)


def _facts(queries: Queries, *, window: float, unfolded_limit: int) -> DatabaseFacts:
    run = queries.run
    orders = orders_by_status(queries)
    folded = run("audit fold mark", _FOLDED).scalar_one()
    first, newest = run("audit rows after the mark", _AFTER_MARK, {"folded": folded}).one()
    # Counted from the first row after the mark: the mark may lag far behind it (tables
    # emptied, a restored database) without that shrinking what a snapshot counts.
    start = int(first) - 1 if first is not None else int(folded)
    not_folded = int(newest) - start if newest is not None else 0
    types = list(COUNTED_EVENTS)
    rows = [*run("folded audit counts", _COUNTED, {"types": types}).mappings()]
    rows += [
        _with_buckets(row)
        for row in run(
            "audit rows not yet folded",
            _NOT_FOLDED,
            {
                "folded": folded,
                "upto": start + unfolded_limit,
                "types": types,
                **bucket_bounds(),
            },
        ).mappings()
    ]
    counted = _count_events(rows)
    backlog, age = run("outbox backlog", _OUTBOX).one()
    failures = {(str(step), str(kind)): int(n) for step, kind, n in run("open failures", _FAILURES)}
    breaker_results = run("breakers", _BREAKERS, {"window": window}).all()
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
        audit_not_folded=not_folded,
        audit_not_counted=max(0, not_folded - unfolded_limit),
        outbox_backlog=int(backlog),
        outbox_oldest_age_seconds=float(age),
        failures_open=failures,
        breakers={system: row.state for system, row in breaker_rows.items()},
        breaker_rows=breaker_rows,
        breaker_windows=windows,
        **counted,
    )


def orders_by_status(queries: Queries, *, cap: int = ORDER_COUNT_LIMIT) -> dict[str, int]:
    if queries.connection.dialect.name != "postgresql":
        return {str(status): int(n) for status, n in queries.run("orders by status", _ORDERS)}
    counted = {
        str(status): int(n)
        for status, n in queries.run("orders by status", _ORDERS_CAPPED, {"cap": cap})
        if n
    }
    past = [status for status, n in counted.items() if n >= cap]
    if not past:
        return counted
    found = queries.run("orders by status estimate", _ORDERS_ESTIMATE).one_or_none()
    return {**counted, **estimate_past_cap(counted, past, found, cap=cap)}


def estimate_past_cap(
    counted: dict[str, int], past: list[str], found: Any, *, cap: int
) -> dict[str, int]:
    """The statuses counted up to the cap only, estimated: the table's estimated rows less
    the exact counts, shared by the statuses' frequencies; never below the cap."""
    reltuples, values, freqs = found if found is not None else (-1, None, None)
    remainder = float(reltuples or 0) - sum(n for s, n in counted.items() if s not in past)
    frequency = dict(zip(values or [], freqs or [], strict=False))
    weights = {status: float(frequency.get(status, 0.0)) for status in past}
    total_weight = sum(weights.values())
    return {
        status: max(
            cap,
            round(remainder * (weights[status] / total_weight if total_weight else 1 / len(past))),
        )
        for status in past
    }


def _limits(connection: Connection, settings: Settings) -> dict[str, SystemLimit]:
    return {
        system: SystemLimit(
            cooling_until=view.cooling_until,
            cooling=view.cooling,
            rate=view.rate_in_force,
            in_flight=view.in_flight,
            waiting=view.waiting,
            throttled=view.throttled,
        )
        for system, view in limits.views(connection, settings.limits_of, settings.throttle).items()
    }


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
