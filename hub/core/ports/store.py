"""The hub's own records, as the step's run (``hub.services.run_step``) needs them.

Two implementations of ``StepStore`` keep the same rules: ``hub.db.hot_path`` on PostgreSQL,
one statement per move, and ``hub.db.step_store`` through the ORM on any database (trial
mode's SQLite). ``hub.bootstrap`` alone picks one; ``tests/integration/test_step_stores.py``
runs one contract over both. The breaker's gate and the give-up record are ports too, so the
use case holds no SQL (``hub.db.breaker_gate``, ``hub.db.failures``); unit tests pass fakes.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, Protocol

from hub.core.errors import DownstreamError
from hub.core.steps import Begun, Outcome, Refused, RetryPlan


class StepStore(Protocol):
    def begin(self, order_id: uuid.UUID, step: str, *, gate_passed: bool) -> Begun:
        """Mark the step running (one more attempt), or say why not.

        Raises ``OrderNotFound`` for an order or step the hub does not know."""

    def succeed(
        self, order_id: uuid.UUID, step: str, *, attempt: int, outcome: Outcome, seconds: float
    ) -> bool:
        """Keep the outcome (the order's own last step also completes the order); False when
        the system's breaker is not closed, so the success must also be told to it."""

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

    def refuse(
        self, order_id: uuid.UUID, step: str, *, refused: Refused, asked: Mapping[str, Any]
    ) -> None:
        """Audit a refused step message (``step.refused``) with what it asked for."""


class BreakerGate(Protocol):
    def hold(self, order_id: uuid.UUID, step: str, system: str) -> int | None:
        """The slow gate, for a breaker that is not closed: seconds to hold the step back
        (recorded as deferred), or None to go ahead and call the system."""

    def note(self, system: str, error: DownstreamError | None, *, retried: bool = False) -> None:
        """Tell the breaker how a call went (None: it succeeded; ``retried``: the call was a
        retry, a step's second or later attempt)."""


class StepRecorder(Protocol):
    def gave_up(
        self, order_id: uuid.UUID, step: str, *, kind: str, error: DownstreamError, attempts: int
    ) -> None:
        """Mark the order failed at the step with an open failure record."""
