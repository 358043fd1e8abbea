"""One step of an order's chain, made idempotent by the hub's own record of its outcome.

The logic here knows nothing of SQL or HTTP: it talks to a ``StepStore`` (our records) and a
``StepCall`` (the downstream system). Production wires ``hub.db.step_store.SqlStepStore`` and the
adapters; unit tests wire fakes of these two ports.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from hub.core.errors import DownstreamError


@dataclass(frozen=True)
class OrderSnapshot:
    """What a downstream call needs to know of an order."""

    id: uuid.UUID
    customer: dict[str, Any]
    ship_to: dict[str, Any]
    currency: str
    lines: list[dict[str, Any]]


@dataclass(frozen=True)
class Outcome:
    """What a step produced: the downstream id and the response worth keeping."""

    downstream_id: str
    result: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Started:
    order: OrderSnapshot
    attempt: int
    # Outcomes of the steps before this one, by step name (a shipment needs the reservation).
    earlier: Mapping[str, Outcome]


@dataclass(frozen=True)
class AlreadyDone:
    outcome: Outcome


class StepStore(Protocol):
    def begin(self, order_id: uuid.UUID, step: str) -> Started | AlreadyDone:
        """Mark the step running (one more attempt), or say it already succeeded."""

    def succeed(
        self, order_id: uuid.UUID, step: str, *, attempt: int, outcome: Outcome, seconds: float
    ) -> None:
        """Keep the outcome; the last step also completes the order."""

    def fail(self, order_id: uuid.UUID, step: str, *, attempt: int, error: DownstreamError) -> None:
        """Record a failed attempt (the retry decision is the caller's)."""


# Calls the downstream system for one step. The key makes a repeated call harmless.
StepCall = Callable[[Started, str], Outcome]


class StepFailed(Exception):
    """A downstream call failed on this attempt (already recorded); ``error`` says how."""

    def __init__(self, error: DownstreamError, attempt: int) -> None:
        super().__init__(str(error))
        self.error = error
        self.attempt = attempt


class OrderNotFound(LookupError):
    """No order with this id: the message refers to nothing the hub knows."""


def idempotency_key(order_id: uuid.UUID, step: str) -> str:
    return f"{order_id}:{step}"


def perform(
    order_id: uuid.UUID,
    step: str,
    *,
    store: StepStore,
    call: StepCall,
    clock: Callable[[], float] = time.monotonic,
) -> Outcome:
    """Run ``step`` for the order once; a step that already succeeded is not called again.

    Raises ``StepFailed`` (with the attempt number) after recording the error, so the caller
    can decide whether to retry.
    """
    begun = store.begin(order_id, step)
    if isinstance(begun, AlreadyDone):
        return begun.outcome
    started = clock()
    try:
        outcome = call(begun, idempotency_key(order_id, step))
    except DownstreamError as error:
        store.fail(order_id, step, attempt=begun.attempt, error=error)
        raise StepFailed(error, begun.attempt) from error
    store.succeed(order_id, step, attempt=begun.attempt, outcome=outcome, seconds=clock() - started)
    return outcome
