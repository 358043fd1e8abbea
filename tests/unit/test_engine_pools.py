"""A worker's threads share a bounded number of PostgreSQL connections per pool."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.pool import QueuePool

from hub.db import engine

URL = "postgresql+psycopg2://hub@127.0.0.1:5432/never_connected"


@pytest.fixture(autouse=True)
def _default_size() -> Iterator[None]:
    yield
    engine.size_pools_for_threads(1)  # back to the default for whatever runs next


def most_connections() -> int:
    pool = engine.engine_for(URL).pool
    assert isinstance(pool, QueuePool)
    return pool.size() + pool._max_overflow  # no public reader of the bound


def test_32_threads_share_16_connections_per_pool_not_one_each() -> None:
    engine.size_pools_for_threads(32)
    assert most_connections() == engine.MAX_POOL == 16
    autocommit = engine.autocommit(engine.engine_for(URL)).pool
    assert isinstance(autocommit, QueuePool)
    assert autocommit.size() + autocommit._max_overflow == 16


def test_a_process_with_few_threads_keeps_the_default_pool() -> None:
    engine.size_pools_for_threads(4)
    assert most_connections() == engine.POOL_SIZE + 10


def test_connections_held_for_a_whole_call_have_a_pool_of_their_own_one_per_thread() -> None:
    engine.size_pools_for_threads(32)
    leases = engine.lease_engine(URL).pool
    assert isinstance(leases, QueuePool)
    assert leases.size() + leases._max_overflow == 32
    assert engine.lease_engine(URL) is not engine.engine_for(URL)
