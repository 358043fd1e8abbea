"""Figure i: history at scale, every figure beside its twin on an empty database.

The same figures twice in one run: first on the stack's empty database, then after filling it
with ``orders`` completed orders of history (their lines, steps, sent outbox rows and audit
rows, written by SQL in bulk, spread over ``months`` months, then folded as the relay does):
intake p99 and capacity (closed-loop senders), pipeline throughput, ``/metrics``, the status
and failures pages, ``hub status``, ``hub timeline`` of one order. ``hub prune`` of a month is
the oldest month of that history against a database holding only that month. Each figure's
ratio to its twin is in a key ending in ``ratio``.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

import requests
from sqlalchemy import Connection, text
from sqlalchemy.exc import OperationalError

from bench import records, state
from bench.auth import sender_headers
from bench.env import OPERATOR
from bench.latency import load, summary
from bench.load import new_run_id, order_payload, post_order, run_clients
from bench.stack import Stack
from hub.db.engine import get_engine, unit_of_work
from hub.services import audit_rollup
from hub.settings import get_settings

T = TypeVar("T")
CHUNK = 50_000  # orders per INSERT statement: bounded transactions, WAL and memory
DAY = 86400.0


@dataclass(frozen=True)
class HistoryParams:
    orders: int = 5_000_000
    months: int = 12
    intake_requests: int = 600
    intake_clients: int = 8
    pipeline_orders: int = 300
    repeats: int = 5  # each read is timed this many times; the median counts


# One statement per chunk: the orders, oldest first (so that the audit trail's seq follows time
# as in a hub that ran for months: the fold and the prune walk it by seq, and the prune stops at
# the first batch younger than its cutoff), then from their ids their lines, steps, outbox rows
# and the audit rows of a clean run (received, queued, each step started and succeeded,
# completed).
_FILL = text(
    """
WITH o AS (
    INSERT INTO orders (id, sender, external_id, status, customer, ship_to, currency,
                        pipeline, pipeline_version, created_at, updated_at)
    SELECT gen_random_uuid(), 'history', 'H-' || n, 'completed',
           '{"id": "C-1", "name": "Ada", "email": "ada@example.com"}',
           '{"name": "Ada", "line1": "1 Rue", "city": "Lyon", "postal_code": "69001",
             "country": "FR"}',
           'EUR', CAST(:pipeline AS jsonb), :version, at, at + interval '3 seconds'
    FROM (
        SELECT n, now() - make_interval(secs => :newest + (:span * (:total - n)) / :total) AS at
        FROM generate_series(:first, :last) AS n
    ) AS spread
    RETURNING id, created_at
),
lines AS (
    INSERT INTO order_lines (order_id, position, sku, qty, unit_price)
    SELECT o.id, p, 'SKU-00' || (p + 1), 1 + p, 12.50 FROM o, generate_series(0, 1) AS p
),
steps AS (
    INSERT INTO step_outcomes (order_id, step, status, attempts, downstream_id, updated_at)
    SELECT o.id, step, 'succeeded', 1, step || '-' || left(o.id::text, 8), o.created_at
    FROM o, unnest(CAST(:steps AS text[])) AS step
),
sent AS (
    INSERT INTO outbox (order_id, start_step, created_at, sent_at, publish_attempts)
    SELECT o.id, :first_step, o.created_at, o.created_at, 1 FROM o
),
events AS (
    INSERT INTO integration_events (id, event_type, status, created_at, order_id, step, detail)
    SELECT gen_random_uuid(), e.event_type, 'ok', o.created_at + e.k * interval '100 ms',
           o.id, e.step, e.detail
    FROM o, (
        SELECT 0 AS k, 'order.received' AS event_type, NULL AS step, '{}'::jsonb AS detail
        UNION ALL SELECT 1, 'order.queued', :first_step, '{}'::jsonb
        UNION ALL
        SELECT 2 + 2 * (s.i - 1), 'step.started', s.step, '{}'::jsonb
        FROM unnest(CAST(:steps AS text[])) WITH ORDINALITY AS s(step, i)
        UNION ALL
        SELECT 3 + 2 * (s.i - 1), 'step.succeeded', s.step, '{"duration_ms": 40}'::jsonb
        FROM unnest(CAST(:steps AS text[])) WITH ORDINALITY AS s(step, i)
        UNION ALL SELECT 20, 'order.completed', NULL, '{}'::jsonb
    ) AS e
)
SELECT count(*) FROM o
"""
)


# The fill drops these tables' indexes and constraints whose keys come in random order (uuids:
# past the cache, each row inserted costs a random page write in each of them, which made a
# million orders take 15 minutes) and builds them after, one sort each. Kept: the indexes that
# grow at their right edge (seq, outbox id) and the ones the running stack reads during the
# fill (the relay folds and polls the outbox meanwhile). The tables stay logged: UNLOGGED
# tables would change what is measured after (no WAL written for the history, and turning them
# back to logged rewrites them).
_FILLED = ("orders", "order_lines", "step_outcomes", "outbox", "integration_events")
_KEPT = ("uq_integration_events_seq", "pk_outbox", "ix_outbox_unsent", "ix_orders_status")
_CONSTRAINTS = text(
    """
SELECT c.conrelid::regclass::text AS tbl, quote_ident(c.conname) AS name,
       pg_get_constraintdef(c.oid) AS def, c.contype AS kind
FROM pg_constraint AS c
WHERE c.conname <> ALL(CAST(:kept AS text[]))
  AND ((c.contype IN ('p', 'u') AND c.conrelid = ANY(CAST(:tables AS regclass[])))
       OR (c.contype = 'f' AND (c.conrelid = ANY(CAST(:tables AS regclass[]))
                                OR c.confrelid = ANY(CAST(:tables AS regclass[])))))
"""
)
_INDEXES = text(
    """
SELECT quote_ident(i.relname) AS name, pg_get_indexdef(x.indexrelid) AS def
FROM pg_index AS x JOIN pg_class AS i ON i.oid = x.indexrelid
WHERE x.indrelid = ANY(CAST(:tables AS regclass[]))
  AND i.relname <> ALL(CAST(:kept AS text[]))
  AND NOT EXISTS (SELECT 1 FROM pg_constraint AS c WHERE c.conindid = x.indexrelid)
"""
)


def _drop_random_indexes(connection: Connection) -> list[str]:
    """Drop the indexes and constraints the fill does without; return what rebuilds them."""
    names = {"tables": list(_FILLED), "kept": list(_KEPT)}
    constraints = connection.execute(_CONSTRAINTS, names).mappings().all()
    indexes = connection.execute(_INDEXES, names).mappings().all()
    for row in sorted(constraints, key=lambda r: r["kind"] != "f"):  # foreign keys first
        connection.execute(text(f"ALTER TABLE {row['tbl']} DROP CONSTRAINT {row['name']}"))
    for row in indexes:
        connection.execute(text(f"DROP INDEX {row['name']}"))
    keys = [c for c in constraints if c["kind"] != "f"]
    foreign = [c for c in constraints if c["kind"] == "f"]
    return [
        *(f"ALTER TABLE {c['tbl']} ADD CONSTRAINT {c['name']} {c['def']}" for c in keys),
        *(str(i["def"]) for i in indexes),
        *(f"ALTER TABLE {c['tbl']} ADD CONSTRAINT {c['name']} {c['def']}" for c in foreign),
    ]


def _run(connection: Connection, statements: list[str]) -> None:
    for statement in statements:
        connection.execute(text(statement))


def _in_one_transaction(connection: Connection, work: Callable[[], T], attempts: int = 10) -> T:
    """``work`` in one transaction that first locks the filled tables (and failures, whose
    foreign key goes too), all in one statement; tried again on a deadlock. Taken one by
    one, a lock for a rebuilt index met the running relay holding a table it wanted next:
    PostgreSQL broke the deadlock by failing the rebuild, and a 5M-order run with it."""
    for attempt in range(1, attempts + 1):
        try:
            connection.execute(
                text(f"LOCK TABLE {', '.join(_FILLED)}, failures IN ACCESS EXCLUSIVE MODE")
            )
            done = work()
            connection.commit()
            return done
        except OperationalError as exc:
            connection.rollback()
            if attempt == attempts or "deadlock" not in str(exc):
                raise
            time.sleep(1)
    raise AssertionError("unreachable")


def _lower_priority(connection: Connection) -> None:
    """Best effort: the backend that fills runs at the lowest CPU and I/O priority when the
    database is on this host and we may renice it (the fill need not hold up anyone else)."""
    host = get_engine().url.host or ""
    if host not in ("127.0.0.1", "localhost", "::1") and not host.startswith("/"):
        return
    pid = int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, pid, 19)
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(["ionice", "-c", "3", "-p", str(pid)], capture_output=True, timeout=10)


def fill(orders: int, *, newest_days: float, span_days: float) -> float:
    """``orders`` completed orders, ages spread evenly from ``newest_days`` to
    ``newest_days + span_days``, written without the random-key indexes, which are built
    after; then ANALYZE and the fold; seconds taken."""
    started = time.monotonic()
    pipeline = get_settings().pipeline
    with get_engine().connect() as connection:
        _lower_priority(connection)
        # Enough memory to build each index in one sort (a session setting: it outlives commits).
        connection.execute(text("SET maintenance_work_mem = '512MB'"))
        rebuild = _in_one_transaction(connection, lambda: _drop_random_indexes(connection))
        try:
            for first in range(1, orders + 1, CHUNK):
                last = min(orders, first + CHUNK - 1)
                connection.execute(
                    _FILL,
                    {
                        "first": first,
                        "last": last,
                        "total": max(1, orders),
                        "newest": newest_days * DAY,
                        "span": span_days * DAY,
                        "pipeline": json.dumps(list(pipeline.steps)),
                        "version": pipeline.version,
                        "steps": list(pipeline.steps),
                        "first_step": pipeline.first,
                    },
                )
                connection.commit()  # one chunk a transaction: bounded WAL and locks
        finally:
            connection.rollback()
            _in_one_transaction(connection, lambda: _run(connection, rebuild))
        connection.execute(text("ANALYZE"))
        connection.commit()
    _fold_all(deadline=time.monotonic() + 3600)
    return time.monotonic() - started


def _fold_all(*, deadline: float) -> None:
    """Fold until the fold's mark reaches the newest audit row. The stack's relay folds too:
    while it holds the mark, ``fold`` here gets nothing and stops, which is not caught up (a
    run measured its figures with three quarters of the trail not yet folded that way)."""
    while time.monotonic() < deadline:
        audit_rollup.fold(batch=250_000, max_batches=100_000)
        with unit_of_work() as session:
            newest = session.execute(text("SELECT max(seq) FROM integration_events")).scalar()
            if newest is None or audit_rollup.folded_up_to(session) >= int(newest):
                return
        time.sleep(0.5)
    raise TimeoutError("the audit trail of the history was not folded within the hour")


def _median(run: Callable[[], object], repeats: int) -> float:
    run()  # warm: pools, caches, the first plan
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _get(url: str) -> Callable[[], object]:
    session = requests.Session()
    session.auth = OPERATOR

    def run() -> object:
        reply = session.get(url, timeout=120)
        reply.raise_for_status()
        return reply

    return run


def _cli(*argv: str) -> Callable[[], object]:
    def run() -> object:
        return subprocess.run(
            [sys.executable, "-m", "hub", *argv], capture_output=True, check=True, timeout=600
        )

    return run


def one_order_id() -> str:
    with get_engine().connect() as connection:
        found = connection.execute(
            text("SELECT id::text FROM orders ORDER BY created_at DESC LIMIT 1")
        ).scalar()
    return str(found)


def pipeline_run(stack: Stack, orders: int, clients: int) -> float:
    """Completed orders a second, from the first post to the last of these orders done."""
    headers = sender_headers("history")
    run = new_run_id()
    url = f"{stack.api_url}/orders"
    started = time.monotonic()
    intake = run_clients(
        lambda n: post_order(url, order_payload(n, run=run), headers=headers),
        range(orders),
        clients=clients,
    )
    accepted = set(intake.accepted)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        found = records.statuses_of(accepted)
        if sum(1 for s in found.values() if s in ("completed", "failed")) >= len(accepted):
            break
        time.sleep(0.1)
    seconds = time.monotonic() - started
    return round(len(accepted) / seconds, 1) if seconds > 0 else 0.0


def figures(stack: Stack, params: HistoryParams) -> dict[str, Any]:
    """Every figure of the row on the database as it is now (milliseconds, or per second)."""
    api = stack.api_url
    intake = summary(
        load(
            f"{api}/orders",
            sender_headers("history"),
            count=params.intake_requests,
            clients=params.intake_clients,
        )
    )
    found = {
        "intake_p99_ms": intake["p99_ms"],
        "intake_capacity_per_s": intake["requests_per_s"],
        "pipeline_per_s": pipeline_run(stack, params.pipeline_orders, params.intake_clients),
    }
    order_id = one_order_id()
    reads = {
        "metrics_ms": _get(f"{api}/metrics"),
        "status_page_ms": _get(f"{api}/ui/status"),
        "failures_page_ms": _get(f"{api}/ui/failures"),
        "hub_status_ms": _cli("status"),
        "hub_timeline_ms": _cli("timeline", order_id),
    }
    for name, run in reads.items():
        try:
            found[name] = round(_median(run, params.repeats) * 1000, 1)
        except (subprocess.SubprocessError, requests.RequestException) as exc:
            # A read that failed (the machine's PostgreSQL out of connections, say) is a figure
            # missing, with its reason, not the end of the row.
            found[name] = None
            found[f"{name.removesuffix('_ms')}_error"] = _why(exc)
    return found


def _why(exc: Exception) -> str:
    if isinstance(exc, subprocess.CalledProcessError):
        said = (exc.stderr or b"").decode(errors="replace") + (exc.stdout or b"").decode(
            errors="replace"
        )
        return f"exit {exc.returncode}: {' '.join(said.split())[-300:]}"
    return str(exc)[:300]


def prune_month(params: HistoryParams) -> float | None:
    """``hub prune`` of the oldest month of the history; milliseconds (None if it failed)."""
    older_than = f"{(params.months - 1) * 30 + 1}d"
    started = time.perf_counter()
    try:
        _cli("prune", "--older-than", older_than)()
    except subprocess.SubprocessError:
        return None
    return round((time.perf_counter() - started) * 1000, 1)


def _ratio(history: float | None, empty: float | None) -> float | None:
    if history is None or not empty:
        return None
    return round(history / empty, 3)


def measure(stack: Stack, params: HistoryParams) -> dict[str, Any]:
    state.truncate_all()
    state.purge_queues()
    stack.sandbox.clear_faults()
    empty = figures(stack, params)

    # The twin of the prune: only the month that goes.
    month = max(1, params.orders // params.months)
    oldest = (params.months - 1) * 30 + 1
    state.truncate_all()
    fill(month, newest_days=oldest + 0.01, span_days=29.9)
    empty["hub_prune_month_ms"] = prune_month(params)

    state.truncate_all()
    filled_s = fill(params.orders, newest_days=1, span_days=params.months * 30 - 1)
    with unit_of_work() as session:
        rows = {
            table: int(session.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
            for table in ("orders", "order_lines", "step_outcomes", "outbox", "integration_events")
        }
    with get_engine().connect() as connection:
        size = connection.execute(
            text("SELECT pg_size_pretty(pg_database_size(current_database()))")
        ).scalar_one()
    history = figures(stack, params)
    history["hub_prune_month_ms"] = prune_month(params)

    result: dict[str, Any] = {
        "params": asdict(params),
        "filled_in_s": round(filled_s, 1),
        "rows": rows,
        "database_size": size,
        "empty": empty,
        "history": history,
    }
    for name, value in history.items():
        if name.endswith("_error"):
            continue
        base = name.removesuffix("_ms").removesuffix("_per_s")
        result[f"{base}_ratio"] = _ratio(value, empty.get(name))
    state.purge_queues()
    return result
