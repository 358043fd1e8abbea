"""Engine and sessions, built on demand from the settings (never at import time)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from sqlalchemy import URL, Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from hub.db.sqlite import sqlite_engine
from hub.settings import get_settings


@lru_cache(maxsize=4)
def engine_for(url: str) -> Engine:
    if url.startswith("sqlite:"):  # trial mode only (the settings refuse it otherwise)
        return sqlite_engine(url)
    return _postgresql_engine(url)


# Connections each pool keeps open while idle, and how many more it may open at a busy moment.
POOL_SIZE = 5
_max_overflow = 10
# The most connections one pool holds at once, however many threads the process runs. A step
# holds a connection only for its statements (milliseconds), never during its downstream call,
# so 32 threads share 16 with little waiting; one connection per thread instead had two
# workers of 32 threads holding 84 at once behind a limited system's row lock (`make bench`
# row h), past PostgreSQL's default max_connections of 100 with the relay and the API.
MAX_POOL = 16
# Threads of this process (a worker on the threads pool; 1 otherwise).
_threads = 1


def size_pools_for_threads(threads: int) -> None:
    """Let the threads of this process (a worker on the threads pool) share at most
    ``MAX_POOL`` connections per pool, opened as needed; a thread that finds them all busy
    waits for one. The pools still keep only ``POOL_SIZE`` idle.

    Engines built before are dropped and built again with the new size on first use.
    """
    global _max_overflow, _threads
    wanted = max(10, min(threads, MAX_POOL) - POOL_SIZE)
    if wanted == _max_overflow and threads == _threads:
        return
    _max_overflow, _threads = wanted, threads
    for engine in _built:
        engine.dispose()
    _built.clear()
    engine_for.cache_clear()
    lease_engine.cache_clear()
    autocommit.cache_clear()
    _factory.cache_clear()


def _postgresql_engine(url: str | URL, *, overflow: int | None = None, **options: Any) -> Engine:
    engine = create_engine(
        url,
        pool_size=POOL_SIZE,
        max_overflow=_max_overflow if overflow is None else overflow,
        connect_args={"connect_timeout": 5},
        # A database error's text would otherwise carry the statement's values (customer data,
        # key hashes) into logs and error records.
        hide_parameters=True,
        **options,
    )
    _ping_idle_connections(engine)
    _built.append(engine)
    return engine


# Every engine this process built, so a forked child can drop the sockets it inherited.
_built: list[Engine] = []


def forget_inherited_connections() -> None:
    """In a forked child (a worker's pool process): never use the parent's sockets."""
    for engine in _built:
        engine.dispose(close=False)


# A connection used within this many seconds is taken as alive. Pinging on every checkout
# (pool_pre_ping) doubles the round trips of the hot path; a connection that died since its
# last use makes one statement fail, which the callers already treat as PostgreSQL away
# (a step is retried without spending an attempt, the API answers 503), and SQLAlchemy then
# replaces every pooled connection.
IDLE_BEFORE_PING = 10.0


def _ping_idle_connections(engine: Engine) -> None:
    @event.listens_for(engine, "checkin")
    def _stamp(dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        since = record.info.get("checked_in_at")
        if since is None or time.monotonic() - since < IDLE_BEFORE_PING:
            return
        try:
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            # The driver opened a transaction for the ping; close it, or the caller's first
            # statement (SET TRANSACTION ISOLATION LEVEL, say) runs inside it and is refused.
            if not dbapi_connection.autocommit:
                dbapi_connection.rollback()
        except Exception as exc:
            # The pool retries the checkout with a new connection.
            raise DisconnectionError("idle connection is gone") from exc


@lru_cache(maxsize=8)
def autocommit(engine: Engine) -> Engine:
    """An engine whose connections run each statement as its own transaction: a statement
    that needs no other costs one round trip, with no BEGIN or COMMIT to wait for.

    A pool of its own: switching a pooled connection to autocommit and back costs a
    ``SET default_transaction_isolation`` round trip on every checkout.
    """
    if engine.dialect.name == "sqlite":
        return engine.execution_options(isolation_level="AUTOCOMMIT")
    return _postgresql_engine(engine.url, isolation_level="AUTOCOMMIT")


@lru_cache(maxsize=4)
def lease_engine(url: str) -> Engine:
    """Connections held for a whole downstream call (``hub.db.lease``: a session advisory
    lock while a step calls a system without idempotency keys): a pool of their own, one per
    thread at most, so calls in flight never take the connections the statements share."""
    return _postgresql_engine(url, overflow=max(10, _threads) - POOL_SIZE)


def get_engine() -> Engine:
    return engine_for(get_settings().database_url)


@lru_cache(maxsize=4)
def _factory(url: str) -> sessionmaker[Session]:
    return sessionmaker(bind=engine_for(url), expire_on_commit=False)


@contextmanager
def unit_of_work() -> Iterator[Session]:
    """A session that commits when the block ends normally and rolls back otherwise."""
    session = _factory(get_settings().database_url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
