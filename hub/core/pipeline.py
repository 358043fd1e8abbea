"""The pipeline's definition, in one place: its steps, the system each calls, the Celery task
names, the kinds of failure and the statuses of orders and steps.

Adding a step means adding it here (and its call in ``hub.services.step_calls``); everything
else reads these names.
"""

from __future__ import annotations

# The chain of every order, in order.
STEPS = ("inventory", "fulfillment", "invoice")
# The downstream system each step calls; the breaker is per system.
SYSTEM_OF_STEP = {"inventory": "erp", "fulfillment": "warehouse", "invoice": "accounting"}

# Every step task is named TASK_PREFIX + step, e.g. ``hub.step.inventory``.
TASK_PREFIX = "hub.step."

# permanent: the system said no; exhausted: transient errors outlasted the retry policy;
# poison: the message killed its worker past the delivery limit; crashed: the task failed
# unexpectedly (a bug, say) and was dead-lettered; stalled: the chain stopped without a dead
# letter (its message lost) and re-driving it did not get it going again.
FAILURE_KINDS = ("permanent", "exhausted", "poison", "crashed", "stalled")

ORDER_STATUSES = ("received", "processing", "completed", "failed")
STEP_STATUSES = ("pending", "running", "error", "succeeded", "failed")


def task_name(step: str) -> str:
    """The Celery task that runs ``step``."""
    return f"{TASK_PREFIX}{step}"


def step_of_task(name: str) -> str | None:
    """The step a task name runs, or None when it is not a step task of the hub."""
    return name[len(TASK_PREFIX) :] if name.startswith(TASK_PREFIX) else None


def step_index(step: str) -> int:
    """Where ``step`` comes in the chain (0 for the first)."""
    return STEPS.index(step)
