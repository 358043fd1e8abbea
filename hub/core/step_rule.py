"""Whether an order's records let one of its steps run: the hub's records, not the message, decide.

A step message can come from anyone who can publish to the broker (a chain link, a replay, the
sweeper, or a Flower user's ``async-apply``); none of them is trusted to know the order's state.
Both step stores check this rule inside the statement that starts the step (the hot path's
``START_STEP`` binds ``RUNNABLE_ORDER_STATUSES`` and ``steps_before``; the ORM path calls
``refusal`` under the step row's lock), so a refused message never calls a downstream system.

A step that already succeeded is not refused but skipped (``AlreadyDone``): a redelivered chain
link must pass the stored result on so the chain continues; the system is not called again.

A cancelled order's step that was in flight when the cancel came (its row ``running``) may run
again: it finishes, then is compensated. Its worker may have been lost with the call made
downstream (killed, or its database away when it went to record the answer): the redelivery or
retry repeats the call with the same idempotency key, which gives back the effect's id, and
the compensation (waiting meanwhile for the step in flight) can then undo it. Refusing it
would leave the order ``cancelling`` until the step counted as lost, then ``cancelled`` with
that effect live downstream (``make chaos`` found it). The same holds for a step whose attempt
failed with a retry to come (``error``): the failed attempt may have reached the system (a
timeout after the ERP made the reservation), and only its retry, with the same key, can tell.
No step that was not started starts.
"""

from __future__ import annotations

from collections.abc import Mapping

from hub.core.registry import REGISTRY
from hub.core.statuses import OrderStatus, StepStatus

# The only order statuses in which a step may start. Everything else (completed, failed, and any
# status added later such as cancelled or closed) refuses: only a replay, which moves the order
# back to processing first, reopens a failed order's step.
RUNNABLE_ORDER_STATUSES = (OrderStatus.RECEIVED, OrderStatus.PROCESSING)
# An order in this status runs only the step it had in flight (above).
FINISHING_ORDER_STATUS = OrderStatus.CANCELLING
# ... if its step is in one of these: in flight, or an attempt failed with its retry to come.
UNSETTLED_STEPS = (StepStatus.RUNNING, StepStatus.ERROR)


def steps_before(step: str) -> tuple[str, ...]:
    """The steps of the registry that come before ``step`` (those of them an order has must
    have succeeded before ``step`` may start)."""
    names = REGISTRY.step_names
    return names[: names.index(step)]


def refusal(order_status: str, step: str, step_statuses: Mapping[str, str]) -> str | None:
    """Why ``step`` may not start for an order in ``order_status`` whose steps are in
    ``step_statuses`` (by step: the order's own pipeline), or None when it may."""
    finishing = (
        order_status == FINISHING_ORDER_STATUS and step_statuses.get(step) in UNSETTLED_STEPS
    )
    if order_status not in RUNNABLE_ORDER_STATUSES and not finishing:
        return f"order is {order_status}"
    pending = [
        s
        for s in steps_before(step)
        if s in step_statuses and step_statuses[s] != StepStatus.SUCCEEDED
    ]
    if pending:
        return f"out of order: {', '.join(pending)} not succeeded"
    return None
