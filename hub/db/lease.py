"""A lease on one order's step: two deliveries of it never call a downstream system at once.

A system without idempotency keys (Tryton) is made exactly-once by finding what an earlier
attempt did before acting; that holds only if no other attempt is acting at the same moment.
The lease is a PostgreSQL session-level advisory lock in the hub's own database, held on a
connection of its own for the length of the call: a second delivery waits for the first to
finish (and then finds its work done), and a worker SIGKILLed mid-call loses its connection,
so PostgreSQL frees the lease with it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import DBAPIError

from hub.core.errors import TransientError


class StepLease:
    """``lease(key)``: a context manager held while one call of ``key``'s step runs."""

    def __init__(self, engine: Engine, *, system: str, wait_s: float) -> None:
        self._engine = engine
        self._system = system
        self._wait_ms = max(1, int(wait_s * 1000))

    @contextlib.contextmanager
    def __call__(self, key: str) -> Iterator[None]:
        lock_id = func.hashtextextended(key, 0)
        with self._engine.connect() as connection:
            try:
                connection.execute(
                    select(func.set_config("lock_timeout", f"{self._wait_ms}ms", False))
                )
                connection.execute(select(func.pg_advisory_lock(lock_id)))
                connection.commit()
            except DBAPIError as exc:
                connection.rollback()
                raise TransientError(
                    system=self._system,
                    message=f"another delivery of {key} is still calling {self._system} "
                    f"(waited {self._wait_ms} ms for its lease)",
                    code="lease_busy",
                ) from exc
            try:
                yield
            finally:
                connection.execute(select(func.pg_advisory_unlock(lock_id)))
                connection.commit()


@contextlib.contextmanager
def no_lease(key: str) -> Iterator[None]:
    """Trial mode's lease (SQLite, one process): nothing to serialise against."""
    yield
