"""Fresh rows and empty queues before a run: the stack's own database and queues only."""

from __future__ import annotations

import contextlib
import time

from kombu.connection import Connection
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from hub.broker.topology import Topology
from hub.db import migrate
from hub.db.engine import get_engine
from hub.settings import get_settings


def fresh_database() -> None:
    """Create the stack's database if needed and rebuild its schema from empty.

    From empty, not from wherever an earlier run left it: the schema is the one this checkout's
    migrations make, whatever happened to the database before.
    """
    url = get_settings().database_url
    migrate.ensure_database(url)
    with get_engine().begin() as connection:
        # A process of an interrupted run must not hold locks on the tables being dropped.
        connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
        connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    migrate.upgrade(url)


def truncate_all(*, attempts: int = 5) -> None:
    """Empty every table. Steps of the figure before may still be finishing (a retry coming
    back, say) and take row locks in the other order: a deadlock is tried again."""
    for attempt in range(1, attempts + 1):
        try:
            _truncate()
            return
        except OperationalError as exc:
            if attempt == attempts or "deadlock" not in str(exc):
                raise
            time.sleep(1)


def _truncate() -> None:
    with get_engine().begin() as connection:
        tables = connection.execute(
            text(
                "SELECT quote_ident(tablename) FROM pg_tables "
                "WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
            )
        ).scalars()
        names = ", ".join(tables)
        if names:
            connection.execute(text(f"TRUNCATE {names} CASCADE"))


def broker() -> Connection:
    return Connection(get_settings().broker_url, connect_timeout=5)


def purge_queues(prefix: str | None = None) -> None:
    """Declare the work and failure queues of ``prefix`` (the stack's own) and empty them."""
    topology = Topology(prefix or get_settings().queue_prefix)
    with broker() as connection:
        channel = connection.channel()
        for queue in [*topology.work_queues(), topology.failure_queue()]:
            bound = queue.bind(channel)
            bound.declare()
            bound.purge()


def queue_depths(prefix: str | None = None) -> dict[str, int]:
    """Ready messages in each work queue (unacknowledged ones are not counted)."""
    topology = Topology(prefix or get_settings().queue_prefix)
    depths: dict[str, int] = {}
    with broker() as connection:
        channel = connection.channel()
        for step in get_settings().pipeline.steps:
            name = topology.queue_name(step)
            _, messages, _ = channel.queue_declare(name, passive=True)
            depths[name] = int(messages)
    return depths


def delayed_depth() -> int:
    """Messages parked in Celery's ``celery_delayed_*`` queues (shared by every prefix)."""
    total = 0
    with broker() as connection:
        for level in range(28):
            # A missing queue closes the channel it was asked on: one channel per question.
            channel = connection.channel()
            with contextlib.suppress(Exception):
                _, messages, _ = channel.queue_declare(f"celery_delayed_{level}", passive=True)
                total += int(messages)
            with contextlib.suppress(Exception):
                channel.close()
    return total
