"""Running one step of an order's chain: the breaker gate, the attempt, and what follows it.

This is the pipeline's decision tree, taken out of the Celery task so it can be read and tested
on its own: the task only turns the answer into Celery's terms (``Retry`` -> ``task.retry``,
``GiveUp`` -> ``Reject``). The collaborators come in as ports (``StepPorts``, the store's in
``hub.core.ports.store``); ``hub.bootstrap`` wires the SQL ones of ``hub.db``, unit tests fakes.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hub.core.errors import DownstreamError, PermanentError
from hub.core.ports.store import BreakerGate, StepRecorder, StepStore
from hub.core.registry import REGISTRY
from hub.core.retry_policy import RetryPolicy, backoff_ceiling, next_delay
from hub.core.steps import (
    BreakerNotClosed,
    OrderNotFound,
    Outcome,
    Refused,
    RetryPlan,
    Started,
    StepCall,
    Unrecordable,
    Wait,
    idempotency_key,
)
from hub.core.stored_text import UNRECORDABLE, storable_result, unrecordable
from hub.db.limits import Slot
from hub.observability.logs import bind_log_context
from hub.services.system_limits import NoLimits, SystemLimiter


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


@dataclass(frozen=True)
class Refuse:
    """The order's records do not let this step run: it was not called, the refusal is
    audited, and the message is dropped without running the rest of its chain."""

    reason: str


Decision = Done | Retry | GiveUp | Refuse


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
    # The system's shared limits (slots, rate, a 429's cooling).
    limits: SystemLimiter = field(default_factory=NoLimits)
    # The call's idempotency key (also its holder of a system's slot): a step's, or a
    # compensation's (hub.services.compensation runs through this same code).
    key: Callable[[uuid.UUID, str], str] = idempotency_key


def run_step(
    order_id: uuid.UUID, step: str, *, ports: StepPorts, asked: Mapping[str, Any] | None = None
) -> Decision:
    """Run ``step`` once: held while the breaker is not closed or the system's limits say
    wait, never called again once it succeeded, retried on transient errors per the step's
    policy, given up (and recorded) on a permanent error or when retries run out.

    The common path costs two statements (``begin`` and ``succeed``): the breaker's closed
    check, the order's state rule (``hub.core.step_rule``) and the breaker's count of calls
    ride on them, and the slow gate is asked only when the breaker is not closed (or the
    system is cooling or throttled after a 429). A system with limits of its own costs two
    more: taking the slot and giving it back. ``asked`` is what the message said of itself
    (task, id, sender's node), kept with a refusal.
    """
    slots: list[Slot] = []
    started = ports.clock()
    try:
        return _run(order_id, step, slots=slots, ports=ports, asked=asked)
    finally:
        for slot in slots:  # however the step ended: the slot is never kept
            ports.limits.release(slot, seconds=ports.clock() - started)


def _run(
    order_id: uuid.UUID,
    step: str,
    *,
    slots: list[Slot],
    ports: StepPorts,
    asked: Mapping[str, Any] | None,
) -> Decision:
    system = REGISTRY.system_of(step)
    holder = ports.key(order_id, step)
    if ports.limits.configured(system):
        slot = ports.limits.acquire(system, holder=holder, order_id=order_id, step=step)
        if isinstance(slot, int):
            return Retry(slot)  # no slot free: not an attempt, nothing called
        slots.append(slot)
    try:
        begun = ports.store.begin(order_id, step, gate_passed=False)
        if isinstance(begun, BreakerNotClosed):
            if not slots:  # cooling or throttled after a 429: the limits decide first
                slot = ports.limits.acquire(system, holder=holder, order_id=order_id, step=step)
                if isinstance(slot, int):
                    return Retry(slot)
                slots.append(slot)
            wait = ports.breaker.hold(order_id, step, system)
            if wait is not None:
                # Not an attempt: the system was not called, so the attempts stay as they are.
                return Retry(wait)
            begun = ports.store.begin(order_id, step, gate_passed=True)
    except OrderNotFound as exc:
        return GiveUp(str(exc))
    if isinstance(begun, Refused):
        ports.store.refuse(order_id, step, refused=begun, asked=asked or {})
        return Refuse(begun.reason)
    if isinstance(begun, Wait):
        return Retry(begun.delay)
    if not isinstance(begun, Started):
        return Done()
    bind_log_context(attempt=begun.attempt)
    started = ports.clock()
    try:
        outcome = ports.calls[step](begun, holder)
    except DownstreamError as error:
        decision = _after_failure(order_id, step, error=error, attempt=begun.attempt, ports=ports)
        ports.breaker.note(system, error, retried=begun.attempt > 1)
        ports.limits.note(system, error)
        return decision
    seconds = ports.clock() - started
    reason = unrecordable(outcome.downstream_id)
    if reason is None:
        outcome = Outcome(outcome.downstream_id, storable_result(outcome.result))
        try:
            kept = ports.store.succeed(
                order_id, step, attempt=begun.attempt, outcome=outcome, seconds=seconds
            )
        except Unrecordable as exc:
            # The database refused what the reply said (a value its column cannot hold):
            # retrying gets the same reply, so it is the operator's, with the reason.
            reason = f"the reply could not be recorded: {exc}"
        else:
            if not kept:
                ports.breaker.note(system, None)
            return Done()
    # The system did answer (its effect may be applied): a failure of ours to record it, never
    # a crash that loses the message, and nothing that counts against the system's breaker.
    refused = PermanentError(system=system, message=reason, code=UNRECORDABLE)
    return _after_failure(order_id, step, error=refused, attempt=begun.attempt, ports=ports)


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
