"""One step of an order's chain, made idempotent by the hub's own record of its outcome.

What a step's run (``hub.services.run_step``) talks to, as ports: a ``StepStore`` (our records)
and a ``StepCall`` (the downstream system). Production wires ``hub.db.hot_path`` (or, on
SQLite, ``hub.db.step_store``) and the adapters; unit tests wire fakes.
"""

from __future__ import annotations

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
    # Downstream ids of the steps before this one, by step name (a shipment needs the
    # reservation, an invoice the shipment).
    earlier: Mapping[str, str]


@dataclass(frozen=True)
class AlreadyDone:
    """The step had succeeded: it is not called again."""


@dataclass(frozen=True)
class BreakerNotClosed:
    """Nothing was started: the system's breaker is not closed, so the caller must pass the
    breaker's gate first (and may then begin with ``gate_passed=True``)."""


Begun = Started | AlreadyDone | BreakerNotClosed


@dataclass(frozen=True)
class RetryPlan:
    """When a failed step will run again, recorded with the failure itself."""

    delay_s: int
    # The policy's ceiling for this attempt (the delay is drawn below it, or is Retry-After).
    backoff_ceiling_s: float


class StepStore(Protocol):
    def begin(self, order_id: uuid.UUID, step: str, *, gate_passed: bool) -> Begun:
        """Mark the step running (one more attempt), or say why not.

        Raises ``OrderNotFound`` for an order or step the hub does not know."""

    def succeed(
        self, order_id: uuid.UUID, step: str, *, attempt: int, outcome: Outcome, seconds: float
    ) -> bool:
        """Keep the outcome (the last step also completes the order); False when the system's
        breaker is not closed, so the success must also be told to it."""

    def fail(
        self,
        order_id: uuid.UUID,
        step: str,
        *,
        attempt: int,
        error: DownstreamError,
        retry: RetryPlan | None,
    ) -> None:
        """Record a failed attempt and, when it will be retried, when."""


# Calls the downstream system for one step. The key makes a repeated call harmless.
StepCall = Callable[[Started, str], Outcome]


class OrderNotFound(LookupError):
    """No order with this id: the message refers to nothing the hub knows."""


def idempotency_key(order_id: uuid.UUID, step: str) -> str:
    return f"{order_id}:{step}"
