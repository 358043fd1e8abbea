"""The three tasks of an order's chain. Each is thin: it runs one step and decides on retry."""

from __future__ import annotations

import logging
import math
import random
import uuid
from functools import lru_cache

from celery import Task, shared_task
from celery.exceptions import Reject
from sqlalchemy.exc import OperationalError as DatabaseUnavailable

from adapters.clients import downstream_from_settings
from hub.core.errors import DownstreamError, PermanentError
from hub.core.pipeline import SYSTEM_OF_STEP, task_name
from hub.core.retry_policy import backoff_ceiling, next_delay
from hub.core.steps import OrderNotFound, StepCall, StepFailed, perform
from hub.db import audit, breaker
from hub.db.engine import unit_of_work
from hub.db.step_store import SqlStepStore, error_detail
from hub.failures import FailureReport, record_failure
from hub.settings import get_settings
from hub.step_calls import step_calls

log = logging.getLogger("hub.tasks")

DATABASE_RETRY_DELAY = 5


@lru_cache(maxsize=1)
def _calls() -> dict[str, StepCall]:
    return step_calls(downstream_from_settings(get_settings()))


def _give_up(
    order_id: uuid.UUID, step: str, *, kind: str, error: DownstreamError, attempts: int
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


def _schedule_retry(
    order_id: uuid.UUID, step: str, *, error: DownstreamError, attempt: int, delay: int
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
            backoff_ceiling_s=backoff_ceiling(get_settings().retry_policy(step), attempt=attempt),
            retry_after_s=error.retry_after,
            reason=str(error)[:300],
            **error_detail(error),
        )


def _breaker_wait(order_id: uuid.UUID, step: str) -> int | None:
    """Seconds to hold the step while its system's breaker is open; None to go ahead."""
    system = SYSTEM_OF_STEP[step]
    with unit_of_work() as session:
        decision = breaker.before_call(session, system, get_settings().breaker)
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


def _note_outcome(step: str, error: DownstreamError | None) -> None:
    system = SYSTEM_OF_STEP[step]
    with unit_of_work() as session:
        if error is None:
            breaker.after_success(session, system)
        else:
            breaker.after_failure(session, system, get_settings().breaker, error)


def run_step(task: Task, order_id: str, step: str) -> None:
    """Run ``step``; retry transient errors per policy, dead-letter the rest after recording.

    The tasks have ``max_retries=None``: our own policy, counting attempts in PostgreSQL,
    decides when to stop (Celery's default of 3 would fail the task and drop the chain).
    """
    try:
        _run_step(task, order_id, step)
    except DatabaseUnavailable as exc:
        # PostgreSQL restarting or away: not the step's fault, so no attempt is spent.
        log.warning(
            "database unavailable, step %s of %s held for %ss", step, order_id, DATABASE_RETRY_DELAY
        )
        raise task.retry(countdown=DATABASE_RETRY_DELAY, exc=exc) from exc


def _run_step(task: Task, order_id: str, step: str) -> None:
    oid = uuid.UUID(order_id)
    wait = _breaker_wait(oid, step)
    if wait is not None:
        # Not an attempt: the system was not called, so the step's attempts stay as they are.
        raise task.retry(countdown=wait)
    try:
        perform(oid, step, store=SqlStepStore(), call=_calls()[step])
    except OrderNotFound as exc:
        raise Reject(str(exc), requeue=False) from exc
    except StepFailed as failed:
        error = failed.error
        _note_outcome(step, error)
        if isinstance(error, PermanentError):
            _give_up(oid, step, kind="permanent", error=error, attempts=failed.attempt)
            raise Reject(str(error), requeue=False) from error
        delay = next_delay(
            get_settings().retry_policy(step),
            attempt=failed.attempt,
            retry_after=error.retry_after,
        )
        if delay is None:
            _give_up(oid, step, kind="exhausted", error=error, attempts=failed.attempt)
            raise Reject(str(error), requeue=False) from error
        _schedule_retry(oid, step, error=error, attempt=failed.attempt, delay=delay)
        raise task.retry(countdown=delay, exc=error) from error
    _note_outcome(step, None)


@shared_task(bind=True, name=task_name("inventory"), max_retries=None)
def inventory(self: Task, order_id: str) -> None:
    run_step(self, order_id, "inventory")


@shared_task(bind=True, name=task_name("fulfillment"), max_retries=None)
def fulfillment(self: Task, order_id: str) -> None:
    run_step(self, order_id, "fulfillment")


@shared_task(bind=True, name=task_name("invoice"), max_retries=None)
def invoice(self: Task, order_id: str) -> None:
    run_step(self, order_id, "invoice")
