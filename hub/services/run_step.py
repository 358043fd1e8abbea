"""Running one step of an order's chain: the breaker gate, the attempt, and what follows it.

This is the pipeline's decision tree, taken out of the Celery task so it can be read and tested
on its own: the task only turns the answer into Celery's terms (``Retry`` -> ``task.retry``,
``GiveUp`` -> ``Reject``). The collaborators come in as ports (``StepPorts``); production wires
the SQL ones below (``hub.bootstrap``), unit tests wire fakes.
"""

from __future__ import annotations

import math
import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Engine

from hub.core.breaker import Breaker, BreakerPolicy, is_down
from hub.core.errors import DownstreamError, PermanentError
from hub.core.pipeline import SYSTEM_OF_STEP
from hub.core.retry_policy import RetryPolicy, backoff_ceiling, next_delay
from hub.core.steps import (
    BreakerNotClosed,
    OrderNotFound,
    RetryPlan,
    Started,
    StepCall,
    StepStore,
    idempotency_key,
)
from hub.db import audit, breaker, hot_path
from hub.db.engine import unit_of_work
from hub.observability.logs import bind_log_context
from hub.services.failures import FailureReport, record_failure


@dataclass(frozen=True)
class Done:
    """The step succeeded (now, or before: then it was not called again)."""


@dataclass(frozen=True)
class Retry:
    """Run the step again in ``delay`` seconds. ``error`` is None when no attempt was spent
    (the breaker held the step back without calling the system)."""

    delay: int
    error: DownstreamError | None = None


@dataclass(frozen=True)
class GiveUp:
    """Do not run this message again: the failure is recorded (or the order is unknown)."""

    reason: str


Decision = Done | Retry | GiveUp


class BreakerGate(Protocol):
    def hold(self, order_id: uuid.UUID, step: str, system: str) -> int | None:
        """The slow gate, for a breaker that is not closed: seconds to hold the step back
        (recorded as deferred), or None to go ahead and call the system."""

    def note(self, system: str, error: DownstreamError | None, *, retried: bool = False) -> None:
        """Tell the breaker how a call went (None: it succeeded; ``retried``: the call was a
        retry, a step's second or later attempt)."""


class StepRecorder(Protocol):
    def gave_up(
        self, order_id: uuid.UUID, step: str, *, kind: str, error: DownstreamError, attempts: int
    ) -> None:
        """Mark the order failed at the step with an open failure record."""


@dataclass(frozen=True)
class StepPorts:
    store: StepStore
    calls: Mapping[str, StepCall]
    breaker: BreakerGate
    recorder: StepRecorder
    retry_policy: Callable[[str], RetryPolicy]
    # Where a retry's jitter comes from (tests pin it).
    rand: Callable[[float, float], float] = random.uniform
    clock: Callable[[], float] = time.monotonic


def run_step(order_id: uuid.UUID, step: str, *, ports: StepPorts) -> Decision:
    """Run ``step`` once: held while the breaker is not closed, never called again once it
    succeeded, retried on transient errors per the step's policy, given up (and recorded) on
    a permanent error or when retries run out.

    The common path costs two statements (``begin`` and ``succeed``): the breaker's closed
    check and its count of calls ride on them, and the slow gate is asked only when the
    breaker is not closed.
    """
    system = SYSTEM_OF_STEP[step]
    try:
        begun = ports.store.begin(order_id, step, gate_passed=False)
        if isinstance(begun, BreakerNotClosed):
            wait = ports.breaker.hold(order_id, step, system)
            if wait is not None:
                # Not an attempt: the system was not called, so the attempts stay as they are.
                return Retry(wait)
            begun = ports.store.begin(order_id, step, gate_passed=True)
    except OrderNotFound as exc:
        return GiveUp(str(exc))
    if not isinstance(begun, Started):
        return Done()
    bind_log_context(attempt=begun.attempt)
    started = ports.clock()
    try:
        outcome = ports.calls[step](begun, idempotency_key(order_id, step))
    except DownstreamError as error:
        decision = _after_failure(order_id, step, error=error, attempt=begun.attempt, ports=ports)
        ports.breaker.note(system, error, retried=begun.attempt > 1)
        return decision
    seconds = ports.clock() - started
    if not ports.store.succeed(
        order_id, step, attempt=begun.attempt, outcome=outcome, seconds=seconds
    ):
        ports.breaker.note(system, None)
    return Done()


def _after_failure(
    order_id: uuid.UUID, step: str, *, error: DownstreamError, attempt: int, ports: StepPorts
) -> Decision:
    """Record the failed attempt with what follows it: a retry, or giving up."""
    policy = ports.retry_policy(step)
    delay = None
    if not isinstance(error, PermanentError):
        delay = next_delay(policy, attempt=attempt, retry_after=error.retry_after, rand=ports.rand)
    plan = None
    if delay is not None:
        plan = RetryPlan(delay, backoff_ceiling(policy, attempt=attempt))
    ports.store.fail(order_id, step, attempt=attempt, error=error, retry=plan)
    if delay is not None:
        return Retry(delay, error)
    kind = "permanent" if isinstance(error, PermanentError) else "exhausted"
    ports.recorder.gave_up(order_id, step, kind=kind, error=error, attempts=attempt)
    return GiveUp(str(error))


# ---- the production ports, on PostgreSQL (or SQLite in trial mode) --------------------------


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


class SqlStepRecorder:
    """Give-ups as failure records."""

    def gave_up(
        self, order_id: uuid.UUID, step: str, *, kind: str, error: DownstreamError, attempts: int
    ) -> None:
        with unit_of_work() as session:
            record_failure(
                session,
                FailureReport(
                    order_id=order_id,
                    step=step,
                    kind=kind,
                    message=error.message,
                    attempts=attempts,
                    http_status=error.status,
                    code=error.code,
                ),
            )
