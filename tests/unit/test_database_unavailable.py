"""Which database errors count as PostgreSQL away (retried, deferred, 503) and which do not."""

from __future__ import annotations

from pathlib import Path

import psycopg2
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from bench.pg_cluster.layout import PgLayout
from hub.db.migrate import member_urls
from hub.db.unavailable import is_unavailable, where


class _PgError(psycopg2.Error):
    def __init__(self, pgcode: str) -> None:
        super().__init__("boom")
        self._code = pgcode

    @property
    def pgcode(self) -> str:  # type: ignore[override]
        return self._code


def _dbapi(code: str) -> DBAPIError:
    return DBAPIError("SELECT 1", {}, _PgError(code))


def test_lost_connections_and_shutdowns_are_away() -> None:
    assert is_unavailable(OperationalError("SELECT 1", {}, Exception("server closed")))
    assert is_unavailable(InterfaceError("SELECT 1", {}, Exception("connection already closed")))
    for code in ("08006", "08001", "57P01", "57P02", "57P03", "25006"):
        assert is_unavailable(_dbapi(code)), code


def test_a_pool_whose_connections_all_stayed_busy_is_away_for_now() -> None:
    # A worker's threads share 16 connections per pool; none came free within the timeout.
    assert is_unavailable(PoolTimeout("QueuePool limit of size 5 overflow 11 reached"))


def test_a_statement_the_server_refused_is_not_away() -> None:
    assert not is_unavailable(IntegrityError("INSERT", {}, Exception("duplicate key")))
    assert not is_unavailable(_dbapi("42P01"))  # undefined table: migrate, not wait
    assert not is_unavailable(ValueError("not a database error"))


def test_where_names_every_host_of_a_multi_host_url() -> None:
    layout = PgLayout(base_dir=Path("/nowhere"), port_base=25400)
    url = make_url(layout.database_url("hub"))
    assert where(url) == "127.0.0.1:25411,127.0.0.1:25412,127.0.0.1:25413/hub"
    assert url.query["target_session_attrs"] == "read-write"
    assert where(make_url("postgresql://postgres@db:5433/hub")) == "db:5433/hub"


def test_every_member_of_a_multi_host_url_is_asked_for_the_new_database() -> None:
    url = make_url(PgLayout.multi_host_url([25411, 25412], "hub"))
    members = member_urls(url)
    assert [(m.host, m.port, m.database) for m in members] == [
        ("127.0.0.1", 25411, "postgres"),
        ("127.0.0.1", 25412, "postgres"),
    ]
    assert all("target_session_attrs" not in m.query for m in members)
    assert member_urls(make_url("postgresql+psycopg2://postgres@127.0.0.1:5432/hub")) == []
