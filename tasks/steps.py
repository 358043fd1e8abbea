"""The three tasks of an order's chain. Each is thin: it runs one step and decides on retry."""

from __future__ import annotations

import logging
import uuid
from functools import lru_cache

from celery import Task, shared_task
from celery.exceptions import Reject

from adapters.clients import downstream_from_settings
from adapters.errors import DownstreamError, PermanentError
from hub import audit
from hub.db import unit_of_work
from hub.failures import FailureReport, record_failure
from hub.retry_policy import next_delay
from hub.settings import get_settings
from hub.step_calls import step_calls
from hub.step_store import SqlStepStore, error_detail
from hub.steps import OrderNotFound, StepCall, StepFailed, perform
from tasks.app import task_name

log = logging.getLogger("hub.tasks")


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
            reason=str(error)[:300],
            **error_detail(error),
        )


def run_step(task: Task, order_id: str, step: str) -> None:
    """Run ``step``; retry transient errors per policy, dead-letter the rest after recording."""
    oid = uuid.UUID(order_id)
    try:
        perform(oid, step, store=SqlStepStore(), call=_calls()[step])
    except OrderNotFound as exc:
        raise Reject(str(exc), requeue=False) from exc
    except StepFailed as failed:
        error = failed.error
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
        # max_retries=None: our own policy (counted in PostgreSQL) decides, not Celery's.
        raise task.retry(countdown=delay, max_retries=None, exc=error) from error


@shared_task(bind=True, name=task_name("inventory"))
def inventory(self: Task, order_id: str) -> None:
    run_step(self, order_id, "inventory")


@shared_task(bind=True, name=task_name("fulfillment"))
def fulfillment(self: Task, order_id: str) -> None:
    run_step(self, order_id, "fulfillment")


@shared_task(bind=True, name=task_name("invoice"))
def invoice(self: Task, order_id: str) -> None:
    run_step(self, order_id, "invoice")
