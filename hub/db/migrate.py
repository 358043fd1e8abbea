"""Bring the database to the newest schema, creating the database itself when it is missing."""

from __future__ import annotations

import time
from pathlib import Path

from alembic.config import Config
from sqlalchemy import URL, create_engine, text
from sqlalchemy.engine import make_url

from alembic import command
from hub.db.engine import engine_for
from hub.db.sqlite import sqlite_file

ROOT = Path(__file__).resolve().parents[2]


def alembic_config(database_url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "alembic"))
    config.attributes["database_url"] = database_url
    return config


def ensure_database(database_url: str, *, replicated_within: float = 60.0) -> bool:
    """Create the database named in the URL if it does not exist; True if it was created.

    On a multi-host URL (a replicated cluster), returns once every member that answers has
    the database too, waiting up to ``replicated_within`` seconds: libpq tries the hosts in
    order, and a standby listed before the primary that has not yet replayed the CREATE
    DATABASE answers "database does not exist", which ends the attempt there instead of
    moving on to the primary.
    """
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return _ensure_sqlite_file(database_url)
    if not url.get_backend_name().startswith("postgresql") or not url.database:
        return False
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            exists = connection.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": url.database}
            ).scalar()
            if not exists:
                quoted = connection.dialect.identifier_preparer.quote(url.database)
                connection.execute(text(f"CREATE DATABASE {quoted}"))
    finally:
        admin.dispose()
    wait_on_every_member(url, timeout=replicated_within)
    return not exists


def member_urls(url: URL) -> list[URL]:
    """One URL per host of a multi-host URL (``?host=a:1&host=b:2``), each on database
    ``postgres`` and with no session attributes; none for a single-host URL."""
    hosts = url.query.get("host")
    if not hosts or isinstance(hosts, str):
        return []
    query = {k: v for k, v in url.query.items() if k not in ("host", "target_session_attrs")}
    found = []
    for host in hosts:
        name, _, port = host.partition(":")
        found.append(
            url.set(host=name, port=int(port) if port else None, database="postgres", query=query)
        )
    return found


class NotReplicated(RuntimeError):
    """A member of the cluster answers but has not had the database after the wait."""


def wait_on_every_member(url: URL, *, timeout: float) -> None:
    """Wait until every member of a multi-host URL that answers lists the database; a member
    that does not answer (down, restarting) is left out: it replays the WAL before it takes
    connections again."""
    waiting = member_urls(url)
    deadline = time.monotonic() + timeout
    while waiting:
        still = []
        for member in waiting:
            engine = create_engine(member, connect_args={"connect_timeout": 3})
            try:
                with engine.connect() as connection:
                    found = connection.execute(
                        text("SELECT 1 FROM pg_database WHERE datname = :name"),
                        {"name": url.database},
                    ).scalar()
            except Exception:  # a member that does not answer is not waited for
                found = True
            finally:
                engine.dispose()
            if not found:
                still.append(member)
        waiting = still
        if waiting and time.monotonic() > deadline:
            where = ", ".join(f"{m.host}:{m.port}" for m in waiting)
            raise NotReplicated(
                f"database {url.database!r} created but still missing on {where} "
                f"after {timeout:.0f} s: is that standby replaying?"
            )
        if waiting:
            time.sleep(0.2)


def _ensure_sqlite_file(database_url: str) -> bool:
    """Trial mode: the SQLite file (and its folder) come into being on first connect."""
    path = sqlite_file(database_url)
    if path is None or path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    with engine_for(database_url).connect():  # creates the file, in WAL mode
        pass
    return True


def upgrade(database_url: str, revision: str = "head") -> None:
    ensure_database(database_url)
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)
