"""Per-system limits: calls in flight, calls per second, a 429's cooling. Pure: no SQL, no clock.

Every worker on every host asks the same shared state (``hub.db.limits``) before it calls a
system that has a limit, or that is cooling or throttled after a 429. The answer is a
``Grant`` (call now; a slot is held until the call ends) or a ``Wait`` (defer the step in the
broker for that long, spending no attempt). Waiting steps queue first come, first served:
a step may take a free slot only when fewer steps than there are free slots have waited
longer than it and are due back now.

Two ways a system says "too much":
- **429 with Retry-After**: the system is *cooling* until then; no worker calls it, and every
  step that comes meanwhile is deferred to just after.
- **any 429**, again and again: the rate is lowered adaptively (AIMD, as TCP does): each 429
  halves it (at most once a second, so one burst counts once), and it grows back by
  ``increase`` calls/s every second until it reaches the configured rate (or, with none, the
  starting rate), where the adaptive limit lapses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field


class SystemLimits(BaseModel):
    """The limits of one system (``HUB_<SYSTEM>_MAX_IN_FLIGHT``, ``HUB_<SYSTEM>_RATE``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_in_flight: int | None = Field(default=None, ge=1)
    # Calls per second.
    rate: float | None = Field(default=None, gt=0)

    @property
    def configured(self) -> bool:
        return self.max_in_flight is not None or self.rate is not None


class ThrottlePolicy(BaseModel):
    """How 429s slow a system down and how it recovers (``HUB_THROTTLE__*``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # The rate a first 429 without Retry-After halves, for a system with no HUB_<SYSTEM>_RATE.
    start_rate: float = Field(default=20.0, gt=0)
    # Multiplicative decrease per 429 without Retry-After.
    decrease: float = Field(default=0.5, gt=0, lt=1)
    # Additive increase: calls per second gained every second since the last decrease.
    increase: float = Field(default=1.0, gt=0)
    # The rate never falls below this.
    min_rate: float = Field(default=0.2, gt=0)
    # 429s closer together than this count as one decrease (they answer one burst).
    decrease_every: float = Field(default=1.0, ge=0)
    # Deferred steps come back spread over this many seconds after a cooling ends.
    spread: float = Field(default=2.0, ge=0)
    # A waiting step is forgotten when it has not come back this long after it was due.
    waiter_grace: float = Field(default=30.0, gt=0)
    # Longest single deferral (a step then asks again, keeping its place in the queue).
    max_wait: float = Field(default=30.0, ge=1)
    # How long a step that finds no free slot waits in its worker thread for one to be given
    # back (woken by PostgreSQL's NOTIFY) before it is deferred in the broker; 0: never.
    slot_wait: float = Field(default=2.0, ge=0, le=10)


IN_FLIGHT = " in flight"

# The shortest round of a slot among waiting steps: the broker defers in whole seconds.
MIN_ROUND = 1.0


@dataclass(frozen=True)
class Shared:
    """What the shared state says at ``now`` (seconds since the epoch), under its lock."""

    now: float
    cooling_until: float | None = None
    # Slots held by calls in flight (leases not yet lapsed).
    held: int = 0
    # Waiting steps due back now that waited longer than the asker.
    ahead: int = 0
    tokens: float | None = None
    tokens_at: float | None = None
    adaptive_rate: float | None = None
    adaptive_at: float | None = None
    # Recent mean duration of a call, to guess when a slot frees.
    call_seconds: float = 0.25


@dataclass(frozen=True)
class Grant:
    # Tokens left in the bucket after this call's (None: no rate in force).
    tokens: float | None
    # Whether a slot must be held (a max-in-flight is set).
    slot: bool


@dataclass(frozen=True)
class Wait:
    seconds: int
    reason: str
    # Only a slot is missing (no cooling, no rate): a slot given back may end the wait at
    # once, so the caller may wait for one briefly (``hub.db.slot_wakes``) before deferring.
    for_slot: bool = field(default=False, compare=False)


def rate_in_force(limits: SystemLimits, shared: Shared, policy: ThrottlePolicy) -> float | None:
    """The calls/s allowed now: the adaptive rate grown back since its decrease, never above
    the configured rate; None when no rate limits the system."""
    if shared.adaptive_rate is None or shared.adaptive_at is None:
        return limits.rate
    grown = shared.adaptive_rate + policy.increase * max(0.0, shared.now - shared.adaptive_at)
    ceiling = limits.rate if limits.rate is not None else policy.start_rate
    if grown >= ceiling:
        return limits.rate
    return grown


def adaptive_recovered(limits: SystemLimits, shared: Shared, policy: ThrottlePolicy) -> bool:
    """The adaptive rate has grown back to where it no longer limits anything."""
    if shared.adaptive_rate is None:
        return False
    return rate_in_force(limits, shared, policy) == limits.rate


def decide(limits: SystemLimits, shared: Shared, policy: ThrottlePolicy) -> Grant | Wait:
    """May one more call start now, or how long should the step wait?"""
    now = shared.now
    if shared.cooling_until is not None and now < shared.cooling_until:
        # Back just after the cooling ends, those ahead first.
        base = shared.cooling_until - now + policy.spread * min(1.0, shared.ahead / 32)
        return Wait(_whole(base, policy), "cooling (429 with Retry-After)")
    waits: list[tuple[float, str]] = []
    slot = limits.max_in_flight is not None
    if limits.max_in_flight is not None:
        free = limits.max_in_flight - shared.held
        if free - shared.ahead < 1:
            # Steps ahead of this one (and this one) take the slots as they free up. A round
            # lasts a call, but at least a second: deferred steps come back in whole seconds,
            # so each slot is taken by a waiter about once a second however short its calls
            # (guessing shorter rounds only sends waiters back to be deferred again).
            behind = shared.ahead + 1 - max(0, free)
            rounds = math.ceil(behind / limits.max_in_flight)
            round_seconds = max(shared.call_seconds, MIN_ROUND)
            waits.append((rounds * round_seconds, f"{limits.max_in_flight}{IN_FLIGHT}"))
    rate = rate_in_force(limits, shared, policy)
    tokens = None
    if rate is not None:
        tokens = refill(shared.tokens, shared.tokens_at, rate=rate, now=now)
        if tokens - shared.ahead < 1:
            waits.append(((shared.ahead + 1 - tokens) / rate, f"rate {rate:g}/s"))
    if waits:
        seconds, reason = max(waits)
        for_slot = len(waits) == 1 and reason.endswith(IN_FLIGHT)
        return Wait(_whole(seconds, policy), reason, for_slot=for_slot)
    return Grant(tokens=None if tokens is None else tokens - 1, slot=slot)


def refill(tokens: float | None, tokens_at: float | None, *, rate: float, now: float) -> float:
    """A token bucket holding one second of calls (at least one): full when never used."""
    capacity = max(1.0, rate)
    if tokens is None or tokens_at is None:
        return capacity
    return min(capacity, tokens + rate * max(0.0, now - tokens_at))


@dataclass(frozen=True)
class Throttled:
    """The shared state after a 429: cooling until, and the adaptive rate (None: none)."""

    cooling_until: float | None
    adaptive_rate: float | None
    # The rate was lowered now (its growth back starts now).
    decreased: bool
    # The cooling was started or pushed further now.
    cooling_changed: bool
    # The token bucket from now on: at most one call in it, refilling from ``tokens_at`` (the
    # cooling's end, or now), so the steps deferred meanwhile come back one at a time at the
    # lowered rate, not as a burst of a full second's calls. None: the bucket stays as it is.
    tokens: float | None = None
    tokens_at: float | None = None


def after_throttle(
    limits: SystemLimits, shared: Shared, policy: ThrottlePolicy, *, retry_after: float | None
) -> Throttled:
    """A 429 came back: cool until its Retry-After (when it has one), and lower the rate.

    The rate is lowered with a Retry-After too: when the cooling ends, the deferred steps come
    back at the lower rate instead of all at once into the same quota.
    """
    cooling = shared.cooling_until
    changed = False
    if retry_after is not None and retry_after > 0:
        until = shared.now + retry_after
        if cooling is None or until > cooling:
            cooling, changed = until, True
    recent = (
        shared.adaptive_at is not None and shared.now - shared.adaptive_at < policy.decrease_every
    )
    current = rate_in_force(limits, shared, policy)
    if current is None:
        current = policy.start_rate
    if recent:
        if not changed:
            return Throttled(cooling, shared.adaptive_rate, decreased=False, cooling_changed=False)
        tokens, tokens_at = _one_call_left(shared, cooling, rate=current)
        return Throttled(
            cooling,
            shared.adaptive_rate,
            decreased=False,
            cooling_changed=True,
            tokens=tokens,
            tokens_at=tokens_at,
        )
    lowered = max(policy.min_rate, current * policy.decrease)
    tokens, tokens_at = _one_call_left(shared, cooling, rate=current)
    return Throttled(
        cooling,
        lowered,
        decreased=True,
        cooling_changed=changed,
        tokens=tokens,
        tokens_at=tokens_at,
    )


def _one_call_left(shared: Shared, cooling: float | None, *, rate: float) -> tuple[float, float]:
    """The bucket after a 429: what it held, but never more than one call, refilling only from
    the end of the cooling (when there is one) or from now."""
    held = refill(shared.tokens, shared.tokens_at, rate=rate, now=shared.now)
    start = shared.now if cooling is None else max(shared.now, cooling)
    return min(1.0, held), start


def _whole(seconds: float, policy: ThrottlePolicy) -> int:
    # Whole seconds >= 1: kombu drops a countdown under a second (see docs/architecture.md).
    return max(1, math.ceil(min(seconds, policy.max_wait)))
