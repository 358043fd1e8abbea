"""Running one step of an order's chain: the breaker gate, the attempt, and what follows it.

This is the pipeline's decision tree, taken out of the Celery task so it can be read and tested
on its own: the task only turns the answer into Celery's terms (``Retry`` -> ``task.retry``,
``GiveUp`` -> ``Reject``). The collaborators come in as ports (``StepPorts``); production wires
the SQL ones below (``hub.bootstrap``), unit tests wire fakes.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from hub.core.breaker_policy import BreakerPolicy
from hub.core.errors import DownstreamError, PermanentError
from hub.core.pipeline import SYSTEM_OF_STEP
from hub.core.retry_policy import RetryPolicy, backoff_ceiling, next_delay
from hub.core.steps import OrderNotFound, Outcome, Started, StepCall, StepFailed, StepStore, perform
from hub.db import audit, breaker
from hub.db.engine import unit_of_work
from hub.db.step_store import error_detail
from hub.observability.logs import bind_log_context
from hub.services.failures import FailureReport, record_failure


@dataclass(frozen=True)
class Done:
    """The step succeeded (now, or before: it was not called again)."""

    outcome: Outcome


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
        """Seconds to hold the step while ``system``'s breaker is open (recorded as deferred);
        None to go ahead and call it."""

    def note(self, system: str, error: DownstreamError | None) -> None:
        """Count a call's result against the breaker (None: it succeeded)."""


class StepRecorder(Protocol):
    def retry_scheduled(
        self, order_id: uuid.UUID, step: str, *, error: DownstreamError, attempt: int, delay: int
    ) -> None:
        """Record that the step will be tried again in ``delay`` seconds, and why."""

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


def run_step(order_id: uuid.UUID, step: str, *, ports: StepPorts) -> Decision:
    """Run ``step`` once: held while the breaker is open, retried on transient errors per the
    step's policy, given up (and recorded) on a permanent error or when retries run out."""
    system = SYSTEM_OF_STEP[step]
    wait = ports.breaker.hold(order_id, step, system)
    if wait is not None:
        # Not an attempt: the system was not called, so the step's attempts stay as they are.
        return Retry(wait)
    call = ports.calls[step]

    def attempt(started: Started, key: str) -> Outcome:
        bind_log_context(attempt=started.attempt)
        return call(started, key)

    try:
        outcome = perform(order_id, step, store=ports.store, call=attempt)
    except OrderNotFound as exc:
        return GiveUp(str(exc))
    except StepFailed as failed:
        error = failed.error
        ports.breaker.note(system, error)
        if isinstance(error, PermanentError):
            ports.recorder.gave_up(
                order_id, step, kind="permanent", error=error, attempts=failed.attempt
            )
            return GiveUp(str(error))
        delay = next_delay(
            ports.retry_policy(step),
            attempt=failed.attempt,
            retry_after=error.retry_after,
            rand=ports.rand,
        )
        if delay is None:
            ports.recorder.gave_up(
                order_id, step, kind="exhausted", error=error, attempts=failed.attempt
            )
            return GiveUp(str(error))
        ports.recorder.retry_scheduled(
            order_id, step, error=error, attempt=failed.attempt, delay=delay
        )
        return Retry(delay, error)
    ports.breaker.note(system, None)
    return Done(outcome)


# ---- the production ports, on PostgreSQL ----------------------------------------------------


class SqlBreakerGate:
    """The breaker shared by all workers (``hub.db.breaker``), one transaction per question."""

    def __init__(self, policy: BreakerPolicy) -> None:
        self._policy = policy

    def hold(self, order_id: uuid.UUID, step: str, system: str) -> int | None:
        with unit_of_work() as session:
            decision = breaker.before_call(session, system, self._policy)
            if decision.allowed:
                return None
            # Spread the waiting steps out, so they don't all arrive with the probe.
            wait = math.ceil(decision.wait) + random.randint(0, 2)
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
            return max(1, wait)

    def note(self, system: str, error: DownstreamError | None) -> None:
        with unit_of_work() as session:
            if error is None:
                breaker.after_success(session, system)
            else:
                breaker.after_failure(session, system, self._policy, error)


class SqlStepRecorder:
    """Retries in the audit trail, give-ups as failure records."""

    def __init__(self, retry_policy: Callable[[str], RetryPolicy]) -> None:
        self._retry_policy = retry_policy

    def retry_scheduled(
        self, order_id: uuid.UUID, step: str, *, error: DownstreamError, attempt: int, delay: int
    ) -> None:
        with unit_of_work() as session:
            audit.record(
                session,
                audit.RETRY_SCHEDULED,
                status="retry",
                order_id=order_id,
                step=step,
                attempt=attempt,
                delay_s=delay,
                backoff_ceiling_s=backoff_ceiling(self._retry_policy(step), attempt=attempt),
                retry_after_s=error.retry_after,
                reason=str(error)[:300],
                **error_detail(error),
            )

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
