"""One step of an order's chain, made idempotent by the hub's own record of its outcome.

What a step's run (``hub.services.run_step``) talks to: a ``StepCall`` (the downstream system)
here, and the hub's own records as ports in ``hub.core.ports.store``. Production wires the
adapters and ``hub.db``; unit tests wire fakes.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hub.core.ports.downstream import Order


@dataclass(frozen=True)
class Outcome:
    """What a step produced: the downstream id and the response worth keeping."""

    downstream_id: str
    result: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Started:
    order: Order
    attempt: int
    # Downstream ids of the steps before this one, by step name (a shipment needs the
    # reservation, an invoice the shipment).
    earlier: Mapping[str, str]
    # What those steps kept of their answers (a later step may tell the tracking number).
    results: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # A compensation's: why the order was cancelled (a credit note says it).
    reason: str = ""


@dataclass(frozen=True)
class AlreadyDone:
    """The step had succeeded: it is not called again."""


@dataclass(frozen=True)
class BreakerNotClosed:
    """Nothing was started: the system's breaker is not closed, so the caller must pass the
    breaker's gate first (and may then begin with ``gate_passed=True``)."""


@dataclass(frozen=True)
class Refused:
    """Nothing was started: the order's records do not let this step run
    (``hub.core.step_rule``), whoever sent the message."""

    reason: str
    order_status: str


@dataclass(frozen=True)
class Wait:
    """Nothing was started, and no attempt spent: come back in ``delay`` seconds (a
    compensation waits for a step of its order still in flight to end)."""

    delay: int


Begun = Started | AlreadyDone | BreakerNotClosed | Refused | Wait


@dataclass(frozen=True)
class RetryPlan:
    """When a failed step will run again, recorded with the failure itself."""

    delay_s: int
    # The policy's ceiling for this attempt (the delay is drawn below it, or is Retry-After).
    backoff_ceiling_s: float


# Calls the downstream system for one step. The key makes a repeated call harmless.
StepCall = Callable[[Started, str], Outcome]


class Unrecordable(ValueError):
    """The store could not keep what a reply said (the database refused a value of it)."""


class OrderNotFound(LookupError):
    """No order with this id: the message refers to nothing the hub knows."""


def idempotency_key(order_id: uuid.UUID, step: str) -> str:
    return f"{order_id}:{step}"


def compensation_key(order_id: uuid.UUID, step: str) -> str:
    """The key of the call undoing ``step``: a repeat of it is harmless too."""
    return f"{order_id}:{step}:compensate"
