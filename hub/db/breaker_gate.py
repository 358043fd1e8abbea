"""The ``BreakerGate`` port on the hub's database: the breaker shared by every worker.

The slow path (``hub.db.breaker``) takes a locked transaction; while a system is flaky and its
window is live, PostgreSQL counts a call in one statement (``hub.db.hot_path.count_call``).
"""

from __future__ import annotations

import math
import random
import uuid

from sqlalchemy import Engine

from hub.core.breaker import Breaker, BreakerPolicy, is_down
from hub.core.errors import DownstreamError
from hub.db import audit, breaker, hot_path
from hub.db.engine import unit_of_work


class SqlBreakerGate:
    """The breaker shared by all workers (``hub.db.breaker``), one transaction per question."""

    def __init__(self, policy: BreakerPolicy, engine: Engine) -> None:
        self._policy = policy
        self._engine = engine

    def hold(self, order_id: uuid.UUID, step: str, system: str) -> int | None:
        with unit_of_work() as session:
            admission = breaker.admit_call(session, system, self._policy)
            if admission.allowed:
                return None
            # Spread the held steps out, so they don't all come back with the first probe;
            # whole seconds >= 1 (a countdown under a second is dropped by kombu).
            wait = max(1, math.ceil(admission.wait + random.uniform(0, self._policy.spread)))
            audit.record(
                session,
                audit.STEP_DEFERRED,
                status="retry",
                order_id=order_id,
                step=step,
                system=system,
                delay_s=wait,
                reason="breaker open",
            )
            return wait

    def note(self, system: str, error: DownstreamError | None, *, retried: bool = False) -> None:
        failed = error is not None and breaker.counts_against(error)
        if error is not None and hot_path.serves(self._engine):
            # While a system is flaky its window is live: one statement counts the call, and
            # only counts that say "down" take the locked path to open the breaker.
            counts = hot_path.count_call(
                self._engine, system, failed=failed, retried=retried, window=self._policy.window
            )
            if counts is not None and not (failed and _says_down(counts, self._policy)):
                return
        with unit_of_work() as session:
            breaker.record_outcome(session, system, self._policy, error=error, retried=retried)


def _says_down(counts: tuple[int, int, int], policy: BreakerPolicy) -> bool:
    calls, failures, retry_failures = counts
    window = Breaker(calls=calls, failures=failures, retry_failures=retry_failures)
    return is_down(window, policy=policy)
