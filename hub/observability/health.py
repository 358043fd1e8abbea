"""Is PostgreSQL / RabbitMQ there? Answers that name the service, where we looked and what to do."""

from __future__ import annotations

import os
from dataclasses import dataclass

from kombu.connection import Connection
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from hub.broker.filesystem import broker_folders
from hub.db.engine import engine_for
from hub.db.sqlite import sqlite_file
from hub.db.unavailable import where as database_where
from hub.observability.diagnosis import postgres_hint, rabbitmq_hint
from hub.settings import Settings


@dataclass(frozen=True)
class ServiceDown:
    """A service that does not answer: which, where we looked, why, and what to do about it.

    The one answer of every check (the commands' and the API's health checks, ``hub status``,
    ``/metrics``).
    """

    service: str
    where: str
    reason: str
    # What to do about it, e.g. "start it with: <command>".
    hint: str = ""
    # The server is there and refused us (credentials, vhost, no database): nothing to start.
    answered: bool = False

    @property
    def headline(self) -> str:
        """One line, for a screen that shows the rest of the snapshot beside it."""
        if self.answered:
            return f"{self.service} at {self.where} refused the hub: {self.reason}"
        return f"{self.service} unreachable at {self.where}: {self.reason}"

    def __str__(self) -> str:
        if self.answered:
            text = f"{self.service} at {self.where} refused the hub: {self.reason}"
        else:
            text = f"{self.service} is not reachable at {self.where}: {self.reason}"
        return f"{text}\n  {self.hint}" if self.hint else text


@dataclass(frozen=True)
class SlowQuery(ServiceDown):
    """PostgreSQL answered, but one of the snapshot's queries ran past its statement timeout:
    a slow query (a long unfolded audit trail, a lock held, a table to index), not a server to
    start. ``query`` names it."""

    query: str = ""
    timeout: float = 0.0

    @property
    def headline(self) -> str:
        return (
            f"{self.service} at {self.where} is slow: query {self.query!r} ran past the "
            f"{self.timeout:g} s statement timeout"
        )

    def __str__(self) -> str:
        return f"{self.headline}\n  {self.hint}" if self.hint else self.headline


TRIAL_START = "make demo  (it sets trial mode up when no server answers)"


def postgres_problem(settings: Settings, *, timeout: float = 3.0) -> ServiceDown | None:
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":  # trial mode
        return sqlite_problem(settings)
    where = database_where(url)
    engine = create_engine(url, connect_args={"connect_timeout": max(1, int(timeout))})
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        found = postgres_hint(reason)
        return ServiceDown("PostgreSQL", where, reason, found.hint, found.answered)
    finally:
        engine.dispose()
    return None


def rabbitmq_problem(settings: Settings, *, timeout: float = 3.0) -> ServiceDown | None:
    if settings.embedded_broker:  # trial mode
        return broker_problem(settings)
    connection = Connection(settings.broker_url, connect_timeout=timeout)
    where = broker_where(settings.broker_url)
    try:
        ensure_any_node(connection, timeout=timeout)
    except Exception as exc:
        found = rabbitmq_hint(exc, settings.broker_url)
        return ServiceDown("RabbitMQ", where, found.reason, found.hint, found.answered)
    finally:
        connection.release()
    return None


def broker_where(url: str) -> str:
    """Every node of a (failover) broker URL, passwords masked: where we looked."""
    return "; ".join(Connection(part).as_uri() for part in url.split(";") if part.strip())


def ensure_any_node(connection: Connection, *, timeout: float) -> None:
    """Connect to the first node of the failover list that answers.

    kombu moves to the next URL of the list after each failed attempt, so a list of n nodes
    needs n retries for every node to be tried (a single URL keeps its one retry).
    """
    nodes = max(1, len(connection.alt))
    connection.ensure_connection(max_retries=nodes, timeout=timeout * nodes)


def problems(settings: Settings) -> list[ServiceDown]:
    return [p for p in (postgres_problem(settings), rabbitmq_problem(settings)) if p]


# ---- trial mode's embedded parts ------------------------------------------------------------


def sqlite_problem(settings: Settings) -> ServiceDown | None:
    path = sqlite_file(settings.database_url)
    where = str(path or settings.database_url)
    if path is not None and not path.exists():
        return ServiceDown(
            "SQLite (trial mode)", where, "the file does not exist", f"start it with: {TRIAL_START}"
        )
    try:
        with engine_for(settings.database_url).connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        return ServiceDown("SQLite (trial mode)", where, reason, f"start it with: {TRIAL_START}")
    return None


def broker_problem(settings: Settings) -> ServiceDown | None:
    folders = broker_folders(settings)
    missing = [str(folder) for folder in folders.all() if not os.access(folder, os.W_OK)]
    if missing:
        reason = f"no writable folder {', '.join(missing)}"
        return ServiceDown(
            "filesystem broker (trial mode)",
            str(folders.root),
            reason,
            f"start it with: {TRIAL_START}",
        )
    return None
