"""The three tasks of an order's chain, each one line: the step's run is a use case
(``hub.services.run_step``); here its answer becomes Celery's retry or reject."""

from __future__ import annotations

import logging
import uuid

from celery import Task, shared_task
from celery.exceptions import Reject
from sqlalchemy.exc import OperationalError as DatabaseUnavailable

from hub import bootstrap
from hub.core.pipeline import task_name
from hub.services.run_step import GiveUp, Retry, run_step

log = logging.getLogger("hub.tasks")

DATABASE_RETRY_DELAY = 5


def execute(task: Task, order_id: str, step: str) -> None:
    """Run ``step``; retry transient errors per policy, dead-letter the rest after recording.

    The tasks have ``max_retries=None``: our own policy, counting attempts in PostgreSQL,
    decides when to stop (Celery's default of 3 would fail the task and drop the chain).
    """
    try:
        decision = run_step(uuid.UUID(order_id), step, ports=bootstrap.step_ports())
    except DatabaseUnavailable as exc:
        # PostgreSQL restarting or away: not the step's fault, so no attempt is spent.
        log.warning(
            "database unavailable, step %s of %s held for %ss", step, order_id, DATABASE_RETRY_DELAY
        )
        raise task.retry(countdown=DATABASE_RETRY_DELAY, exc=exc) from exc
    if isinstance(decision, Retry):
        if decision.error is None:
            raise task.retry(countdown=decision.delay)
        raise task.retry(countdown=decision.delay, exc=decision.error) from decision.error
    if isinstance(decision, GiveUp):
        raise Reject(decision.reason, requeue=False)


@shared_task(bind=True, name=task_name("inventory"), max_retries=None)
def inventory(self: Task, order_id: str) -> None:
    execute(self, order_id, "inventory")


@shared_task(bind=True, name=task_name("fulfillment"), max_retries=None)
def fulfillment(self: Task, order_id: str) -> None:
    execute(self, order_id, "fulfillment")


@shared_task(bind=True, name=task_name("invoice"), max_retries=None)
def invoice(self: Task, order_id: str) -> None:
    execute(self, order_id, "invoice")
