"""The breaker's decisions: when a downstream system is down, flaky or fine. Pure: no SQL, no clock.

A failure-rate breaker in the manner of resilience4j, chosen over a run of consecutive failures
(which a system failing every other call trips again and again) and over client-side adaptive
throttling (which needs every call counted in shared state, a write on every step):

- **closed**: calls go ahead. Nothing is counted while the system answers well; the first
  failure starts a window of ``window`` seconds in which every call is counted. The breaker
  opens when, in that window, at least ``min_calls`` calls were made, at least
  ``failure_rate`` of them failed, and at least ``min_retry_failures`` of the failures were
  retries. A first call failing is what half-working systems do (a cold cache, a proxy that
  drops the first request): until their retries come back, a burst of new orders looks like
  an outage. A retry failing as well is what tells a dead system from a flaky one.
- **open**: nothing is called for ``cooldown`` seconds; steps are held back in the broker.
- **half-open**: up to ``half_open_calls`` probes go ahead. The breaker closes as soon as
  their success rate can no longer fall to the failure rate, and opens again as soon as it can
  no longer rise above it, so one unlucky probe does not cost another full rest.

A 429 or another 4xx is an answer about the request, not about the system's health: the caller
counts it as a success here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, model_validator


class BreakerPolicy(BaseModel):
    """The breaker's settings (``HUB_BREAKER__*``)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    # Share of a window's calls that must fail for the system to count as down.
    failure_rate: float = Field(default=0.8, gt=0, le=1)
    # Fewest calls in a window before its failure rate means anything. (Was `threshold`, the
    # run of consecutive failures that opened the old breaker; the old name is still read.)
    min_calls: int = Field(
        default=10, ge=1, validation_alias=AliasChoices("min_calls", "threshold")
    )
    # How long a window counts calls after its first failure.
    window: float = Field(default=30.0, gt=0)
    # Failed retries (a step's second or later attempt) a window needs before it may open.
    min_retry_failures: int = Field(default=3, ge=0)
    # Rest given to a system judged down before probes are let through.
    cooldown: float = Field(default=10.0, gt=0)
    # Probes let through in half-open.
    half_open_calls: int = Field(default=3, ge=1)
    # How long probes may take before others may probe instead (their workers may have died).
    probe_lease: float = Field(default=30.0, gt=0)
    # Held-back steps come back spread over this many seconds, not all with the first probe.
    spread: float = Field(default=3.0, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _old_name_or_new(cls, values: Any) -> Any:
        if isinstance(values, dict) and {"threshold", "min_calls"} <= set(values):
            raise ValueError(
                "threshold is the old name of min_calls (HUB_BREAKER__THRESHOLD, now "
                "HUB_BREAKER__MIN_CALLS): set only min_calls"
            )
        return values


class Mode(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class Breaker:
    """The shared state of one system's breaker; times are seconds since the epoch."""

    mode: Mode = Mode.CLOSED
    # The counting window (closed): None while the system answers well.
    window_started_at: float | None = None
    calls: int = 0
    failures: int = 0
    retry_failures: int = 0
    # When the breaker last opened after being closed (how long the system has been down).
    opened_at: float | None = None
    # Open: no call before this. Half-open: the probes' lease ends here.
    retry_at: float | None = None
    probes: int = 0
    probe_successes: int = 0
    probe_failures: int = 0


@dataclass(frozen=True)
class Admission:
    allowed: bool
    # Seconds to hold the step back when not allowed.
    wait: float = 0.0
    probe: bool = False


class Change(StrEnum):
    OPENED = "opened"
    REOPENED = "reopened"
    CLOSED = "closed"


def admit(breaker: Breaker, *, now: float, policy: BreakerPolicy) -> tuple[Admission, Breaker]:
    """May a call go ahead now? Returns the answer and the breaker's new state."""
    if breaker.mode is Mode.CLOSED:
        return Admission(allowed=True), breaker
    assert breaker.retry_at is not None
    if breaker.mode is Mode.OPEN:
        if now < breaker.retry_at:
            return Admission(allowed=False, wait=breaker.retry_at - now), breaker
        return _probe(breaker, now=now, policy=policy, first=True)
    if breaker.probes < policy.half_open_calls:
        return _probe(breaker, now=now, policy=policy, first=False)
    if now >= breaker.retry_at:  # the probes' answers never came: their workers died
        return _probe(breaker, now=now, policy=policy, first=True)
    return Admission(allowed=False, wait=min(policy.cooldown, breaker.retry_at - now)), breaker


def _probe(
    breaker: Breaker, *, now: float, policy: BreakerPolicy, first: bool
) -> tuple[Admission, Breaker]:
    if first:
        breaker = replace(
            breaker,
            mode=Mode.HALF_OPEN,
            probes=0,
            probe_successes=0,
            probe_failures=0,
            retry_at=now + policy.probe_lease,
        )
    return Admission(allowed=True, probe=True), replace(breaker, probes=breaker.probes + 1)


def record(
    breaker: Breaker, *, failed: bool, now: float, policy: BreakerPolicy, retried: bool = False
) -> tuple[Breaker, Change | None]:
    """Count a call's outcome (``retried``: the call was a retry); returns the new state and
    the change it caused, if any."""
    if breaker.mode is Mode.OPEN:
        return breaker, None  # a call admitted before the breaker opened: nothing to learn
    if breaker.mode is Mode.HALF_OPEN:
        return _record_probe(breaker, failed=failed, now=now, policy=policy)
    started = breaker.window_started_at
    if started is None or now - started >= policy.window:
        if not failed:
            return _quiet(breaker), None
        breaker = replace(_quiet(breaker), window_started_at=now)
    breaker = replace(
        breaker,
        calls=breaker.calls + 1,
        failures=breaker.failures + int(failed),
        retry_failures=breaker.retry_failures + int(failed and retried),
    )
    if failed and is_down(breaker, policy=policy):
        return _open(breaker, now=now, policy=policy, opened_at=now), Change.OPENED
    return breaker, None


def is_down(breaker: Breaker, *, policy: BreakerPolicy) -> bool:
    """Do the window's counts say the system is down?"""
    return (
        breaker.calls >= policy.min_calls
        and breaker.failures >= policy.failure_rate * breaker.calls
        and breaker.retry_failures >= policy.min_retry_failures
    )


def _record_probe(
    breaker: Breaker, *, failed: bool, now: float, policy: BreakerPolicy
) -> tuple[Breaker, Change | None]:
    breaker = replace(
        breaker,
        probe_successes=breaker.probe_successes + int(not failed),
        probe_failures=breaker.probe_failures + int(failed),
    )
    # Close once the probes' failure rate can no longer reach the threshold; open again once
    # it can no longer stay under it.
    # (Rounded: 5 * (1 - 0.8) is 0.9999999999999998 in floating point.)
    budget = policy.half_open_calls
    if breaker.probe_successes > round(budget * (1 - policy.failure_rate), 9):
        return Breaker(), Change.CLOSED
    if breaker.probe_failures >= round(budget * policy.failure_rate, 9):
        return _open(breaker, now=now, policy=policy, opened_at=breaker.opened_at), Change.REOPENED
    return breaker, None


def _open(
    breaker: Breaker, *, now: float, policy: BreakerPolicy, opened_at: float | None
) -> Breaker:
    return Breaker(
        mode=Mode.OPEN,
        opened_at=opened_at if opened_at is not None else now,
        retry_at=now + policy.cooldown,
        calls=breaker.calls,
        failures=breaker.failures,
        retry_failures=breaker.retry_failures,
    )


def _quiet(breaker: Breaker) -> Breaker:
    return replace(breaker, window_started_at=None, calls=0, failures=0, retry_failures=0)
