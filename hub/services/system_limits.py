"""Calls to a downstream system within its shared limits: the port a step (or a compensation)
asks before it calls, and its PostgreSQL implementation (``hub.db.limits``).

Usage, for anything that calls a system::

    slot = limiter.acquire(system, holder=f"{order_id}:{step}")
    if isinstance(slot, int):
        ...  # defer the work that many seconds (in the broker), spending no attempt
    try:
        ...  # the call
    finally:
        limiter.release(slot, seconds=...)
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Protocol

from sqlalchemy import Engine

from hub.core.errors import DownstreamError, TransientError
from hub.core.limits import SystemLimits, ThrottlePolicy, Wait
from hub.db import audit, limits
from hub.db.engine import unit_of_work
from hub.db.limits import Slot
from hub.db.slot_wakes import RECHECK, SlotWakes

log = logging.getLogger("hub.limits")


class SystemLimiter(Protocol):
    def configured(self, system: str) -> bool:
        """Whether ``system`` has a limit of its own (every call must ask ``acquire``)."""

    def acquire(
        self, system: str, *, holder: str, order_id: uuid.UUID | None = None, step: str = ""
    ) -> Slot | int:
        """A slot for one call now, or the whole seconds to defer it (recorded as deferred)."""

    def release(self, slot: Slot, *, seconds: float) -> None:
        """The call ended (however): give its slot back."""

    def note(self, system: str, error: DownstreamError | None) -> None:
        """Tell the limits how a call went: a 429 cools or slows the system for everyone."""


def is_throttled(error: DownstreamError | None) -> bool:
    """The system said "too many requests" (its quota, not its health)."""
    return isinstance(error, TransientError) and error.throttled


class NoLimits:
    """Trial mode (SQLite): limits are not shared there, so none apply."""

    def configured(self, system: str) -> bool:
        return False

    def acquire(
        self, system: str, *, holder: str, order_id: uuid.UUID | None = None, step: str = ""
    ) -> Slot | int:
        return Slot(system, None)

    def release(self, slot: Slot, *, seconds: float) -> None:
        return None

    def note(self, system: str, error: DownstreamError | None) -> None:
        return None


class SqlSystemLimiter:
    """The limits shared through PostgreSQL, one transaction per question."""

    def __init__(
        self,
        engine: Engine,
        *,
        limits_of: Callable[[str], SystemLimits],
        policy: ThrottlePolicy,
        lease_of: Callable[[str], float],
        wakes: SlotWakes | None = None,
    ) -> None:
        self._engine = engine
        # None: a step that finds no free slot is deferred at once.
        self._wakes = wakes
        self._limits_of = limits_of
        self._policy = policy
        self._lease_of = lease_of

    def configured(self, system: str) -> bool:
        return self._limits_of(system).configured

    def acquire(
        self, system: str, *, holder: str, order_id: uuid.UUID | None = None, step: str = ""
    ) -> Slot | int:
        system_limits = self._limits_of(system)
        budget = self._policy.slot_wait
        if self._wakes is None or budget <= 0 or system_limits.max_in_flight is None:
            return self._deferral(system, holder=holder, order_id=order_id, step=step)
        # Wait for a slot in this thread first (woken when one is given back), then defer.
        with self._wakes.waiting(system, cap=system_limits.max_in_flight) as waiter:
            if waiter is not None:
                deadline = time.monotonic() + budget
                answer = self._ask(system, holder=holder, waiting=True)
                while isinstance(answer, Wait) and answer.for_slot:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    waiter.sleep(min(left, RECHECK))
                    answer = self._ask(system, holder=holder, waiting=True)
                    waiter.asked()
                if isinstance(answer, Slot):
                    return answer
        return self._deferral(system, holder=holder, order_id=order_id, step=step)

    def _deferral(
        self, system: str, *, holder: str, order_id: uuid.UUID | None, step: str
    ) -> Slot | int:
        answer = self._ask(system, holder=holder, order_id=order_id, step=step)
        return answer.seconds if isinstance(answer, Wait) else answer

    def _ask(
        self,
        system: str,
        *,
        holder: str,
        order_id: uuid.UUID | None = None,
        step: str = "",
        waiting: bool = False,
    ) -> Slot | Wait:
        """One question to the shared limits; ``waiting``: the answer "wait" is returned as
        is (the caller waits in its thread), else it is recorded as a deferral."""
        with unit_of_work() as session:
            answer = limits.acquire(
                session,
                system,
                holder=holder,
                limits=self._limits_of(system),
                policy=self._policy,
                lease=self._lease_of(system),
                waiting=waiting,
            )
            if isinstance(answer, Wait) and not waiting:
                audit.record(
                    session,
                    audit.STEP_DEFERRED,
                    status="retry",
                    order_id=order_id,
                    step=step or None,
                    system=system,
                    delay_s=answer.seconds,
                    reason=answer.reason,
                )
            return answer

    def release(self, slot: Slot, *, seconds: float) -> None:
        limits.release(self._engine, slot, seconds=seconds)

    def note(self, system: str, error: DownstreamError | None) -> None:
        if error is None or not is_throttled(error):
            return
        with unit_of_work() as session:
            limits.throttled(
                session,
                system,
                retry_after=error.retry_after,
                limits=self._limits_of(system),
                policy=self._policy,
            )
