"""SQLite for trial mode: one file that the API, relay and worker processes share.

It has to behave like PostgreSQL wherever the hub relies on PostgreSQL:
- transactions that cannot trip over each other: every transaction (reads too) begins
  ``IMMEDIATE``, so they take turns (``busy_timeout``) instead of failing half-way with
  ``SQLITE_BUSY``; that is what makes ``ON CONFLICT``, ``FOR UPDATE`` (which SQLite ignores)
  and the audit ``seq`` safe, at a cost a demo never notices;
- WAL, so each turn is short: a commit appends to the log instead of rewriting the file;
- ``now()`` for the migrations' server defaults, and datetimes that come back aware, in UTC;
- ``integration_events.seq`` numbered in commit order (SQLite has no identity columns).
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, func, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection, Dialect, make_url
from sqlalchemy.orm import Mapper
from sqlalchemy.types import DateTime

from hub.db.models import IntegrationEvent

BUSY_TIMEOUT_S = 30
_LAST_SEQ = "hub_last_audit_seq"


class UtcDateTime(sqlite.DATETIME):
    """SQLite keeps datetimes as text without a zone: store UTC, read back aware UTC."""

    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> Any:
        inner = super().bind_processor(dialect)

        def process(value: Any) -> Any:
            if isinstance(value, datetime) and value.tzinfo is not None:
                value = value.astimezone(UTC).replace(tzinfo=None)
            return inner(value) if inner else value

        return process

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        inner = super().result_processor(dialect, coltype)

        def process(value: Any) -> Any:
            parsed = inner(value) if inner else value
            if isinstance(parsed, datetime) and parsed.tzinfo is None:
                return parsed.replace(tzinfo=UTC)
            return parsed

        return process


def _utc_now_text() -> str:
    # The same text form SQLAlchemy stores, so stored values compare and sort as times.
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _on_connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    # SQLAlchemy emits BEGIN itself (see _begin_immediate); the driver must not.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_S * 1000}")  # before WAL: it may wait
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()
    dbapi_connection.create_function("now", 0, _utc_now_text)


def _begin_immediate(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _number_audit_event(_mapper: Mapper[Any], connection: Connection, target: Any) -> None:
    """Give a new audit row the next ``seq``, as PostgreSQL's identity column would.

    Transactions are serialised, so the highest committed ``seq`` cannot change under us; the
    connection remembers what it handed out in this flush, which the table does not show yet.
    """
    if connection.dialect.name != "sqlite" or target.seq is not None:
        return
    highest = connection.scalar(select(func.max(IntegrationEvent.seq))) or 0
    target.seq = max(highest, connection.info.get(_LAST_SEQ, 0)) + 1
    connection.info[_LAST_SEQ] = target.seq


def sqlite_engine(url: str) -> Engine:
    engine = create_engine(
        url,
        pool_pre_ping=True,
        connect_args={"timeout": BUSY_TIMEOUT_S},
        hide_parameters=True,
    )
    # A per-engine override of the dialect's type map: every DateTime of the models becomes
    # UtcDateTime here, while the models (and PostgreSQL) stay as they are.
    engine.dialect.colspecs = {**engine.dialect.colspecs, DateTime: UtcDateTime}
    event.listen(engine, "connect", _on_connect)
    event.listen(engine, "begin", _begin_immediate)
    if not event.contains(IntegrationEvent, "before_insert", _number_audit_event):
        event.listen(IntegrationEvent, "before_insert", _number_audit_event)
    return engine


def sqlite_file(url: str) -> Path | None:
    """The file of a ``sqlite:///path`` URL; None for an in-memory database."""
    database = make_url(url).database
    return Path(database) if database and database != ":memory:" else None
