"""The tasks of an order's chain, one per step of the registry: the step's run is a use case
(``hub.services.run_step``); here its answer becomes Celery's retry or reject."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from celery import Task, shared_task
from celery.exceptions import Ignore, Reject
from sqlalchemy.exc import SQLAlchemyError

from hub import bootstrap
from hub.core.registry import REGISTRY, compensate_task_name, task_name
from hub.db.unavailable import is_unavailable
from hub.services.run_step import GiveUp, Refuse, Retry, run_step

log = logging.getLogger("hub.tasks")

DATABASE_RETRY_DELAY = 5


def execute(task: Task, order_id: str, step: str, *, compensating: bool = False) -> None:
    """Run ``step``; retry transient errors per policy, dead-letter the rest after recording.

    The tasks have ``max_retries=None``: our own policy, counting attempts in PostgreSQL,
    decides when to stop (Celery's default of 3 would fail the task and drop the chain).
    """
    try:
        ports = bootstrap.compensation_ports() if compensating else bootstrap.step_ports()
        decision = run_step(uuid.UUID(order_id), step, ports=ports, asked=asked(task))
    except SQLAlchemyError as exc:
        if not is_unavailable(exc):
            raise
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
    if isinstance(decision, Refuse):
        # Acked, and the rest of its chain is not sent: Ignore skips the chain's next link.
        log.warning("step %s of %s refused: %s", step, order_id, decision.reason)
        raise Ignore()


def asked(task: Task) -> dict[str, Any]:
    """What a message says of itself, as evidence for a refusal (claims, not proof)."""
    request = task.request
    return {
        "task": task.name,
        "task_id": request.id,
        "origin": getattr(request, "origin", None),
        "retries": request.retries,
        "redelivered": bool((request.delivery_info or {}).get("redelivered")),
    }


def _step_task(step: str) -> Task:
    def run(self: Task, order_id: str) -> None:
        execute(self, order_id, step)

    run.__name__ = run.__qualname__ = step
    return shared_task(bind=True, name=task_name(step), max_retries=None)(run)


def _compensate_task(step: str) -> Task:
    def run(self: Task, order_id: str) -> None:
        execute(self, order_id, step, compensating=True)

    run.__name__ = run.__qualname__ = f"compensate_{step}"
    return shared_task(bind=True, name=compensate_task_name(step), max_retries=None)(run)


# One task per step of the registry (optional ones included: an order accepted with a step
# must find its task whatever the worker's own settings say), and one undoing it.
TASKS = {step: _step_task(step) for step in REGISTRY.step_names}
COMPENSATIONS = {step: _compensate_task(step) for step in REGISTRY.step_names}
