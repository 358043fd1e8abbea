"""Engine and sessions, built on demand from the settings (never at import time)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from hub.db.sqlite import sqlite_engine
from hub.settings import get_settings


@lru_cache(maxsize=4)
def engine_for(url: str) -> Engine:
    if url.startswith("sqlite:"):  # trial mode only (the settings refuse it otherwise)
        return sqlite_engine(url)
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=10,
        connect_args={"connect_timeout": 5},
        # A database error's text would otherwise carry the statement's values (customer data,
        # key hashes) into logs and error records.
        hide_parameters=True,
    )


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
