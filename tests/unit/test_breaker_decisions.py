"""The breaker's decisions as tables: state and outcome in, state and change out."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from hub.core.breaker import (
    Admission,
    Breaker,
    BreakerPolicy,
    Change,
    Mode,
    admit,
    record,
)

POLICY = BreakerPolicy(
    failure_rate=0.8, min_calls=10, window=30, min_retry_failures=3, cooldown=10, half_open_calls=5
)
T = 1_000.0  # a moment; every table row is relative to it


def counting(calls: int, failures: int, retried: int = 3, *, since: float = T) -> Breaker:
    """A window counting since ``since``; ``retried`` of its failures were retries."""
    return Breaker(window_started_at=since, calls=calls, failures=failures, retry_failures=retried)


def half_open(probes: int, ok: int, bad: int) -> Breaker:
    return Breaker(
        mode=Mode.HALF_OPEN,
        opened_at=T - 60,
        retry_at=T + 30,
        probes=probes,
        probe_successes=ok,
        probe_failures=bad,
    )


OPEN = Breaker(mode=Mode.OPEN, opened_at=T - 5, retry_at=T + 5)


@pytest.mark.parametrize(
    ("before", "failed", "retried", "after_mode", "change", "calls", "failures"),
    [
        # A system answering well leaves nothing to count: the row is not written.
        (Breaker(), False, False, Mode.CLOSED, None, 0, 0),
        # The first failure starts a window.
        (Breaker(), True, False, Mode.CLOSED, None, 1, 1),
        # Inside a window, every call counts.
        (counting(4, 2), False, False, Mode.CLOSED, None, 5, 2),
        # 9 of 10 failed, retries among them: down.
        (counting(9, 8), True, False, Mode.OPEN, Change.OPENED, 10, 9),
        (counting(9, 8, 2), True, True, Mode.OPEN, Change.OPENED, 10, 9),
        # ... but not before min_calls calls ...
        (counting(8, 8), True, True, Mode.CLOSED, None, 9, 9),
        # ... nor while only first calls failed: a burst of new orders on a system that fails
        # every first call looks like this until their retries come back (and succeed).
        (counting(40, 40, 0), True, False, Mode.CLOSED, None, 41, 41),
        (counting(40, 40, 1), True, True, Mode.CLOSED, None, 41, 41),
        # Half the calls failing is a flaky system, not a dead one: it stays closed.
        (counting(99, 50, 20), True, True, Mode.CLOSED, None, 100, 51),
        # 60 % failing (a 40 %-working system under load) still stays closed.
        (counting(99, 59, 30), True, True, Mode.CLOSED, None, 100, 60),
        # An expired window is forgotten: a success ends it ...
        (counting(9, 9, since=T - 31), False, False, Mode.CLOSED, None, 0, 0),
        # ... and a failure starts a new one.
        (counting(9, 9, since=T - 31), True, True, Mode.CLOSED, None, 1, 1),
        # An answer to a call admitted before the breaker opened changes nothing.
        (OPEN, True, True, Mode.OPEN, None, 0, 0),
        (OPEN, False, False, Mode.OPEN, None, 0, 0),
    ],
)
def test_record_when_closed_or_open(
    before: Breaker,
    failed: bool,
    retried: bool,
    after_mode: Mode,
    change: Change | None,
    calls: int,
    failures: int,
) -> None:
    after, happened = record(before, failed=failed, retried=retried, now=T + 1, policy=POLICY)
    assert (after.mode, happened, after.calls, after.failures) == (
        after_mode,
        change,
        calls,
        failures,
    )


def test_opening_sets_the_rest_and_remembers_since_when() -> None:
    after, _ = record(counting(9, 9), failed=True, retried=True, now=T + 3, policy=POLICY)
    assert (after.opened_at, after.retry_at) == (T + 3, T + 3 + POLICY.cooldown)


@pytest.mark.parametrize(
    ("before", "failed", "after_mode", "change"),
    [
        # Probes decide: with 5 probes and 80 %, two successes close ...
        (half_open(2, 1, 0), False, Mode.CLOSED, Change.CLOSED),
        # ... one success is not enough yet ...
        (half_open(2, 0, 1), False, Mode.HALF_OPEN, None),
        # ... one unlucky probe does not reopen ...
        (half_open(3, 1, 0), True, Mode.HALF_OPEN, None),
        # ... four failed probes do, whatever the fifth would say.
        (half_open(5, 0, 3), True, Mode.OPEN, Change.REOPENED),
        (half_open(5, 1, 2), False, Mode.CLOSED, Change.CLOSED),
    ],
)
def test_record_probe(before: Breaker, failed: bool, after_mode: Mode, change: Change) -> None:
    after, happened = record(before, failed=failed, now=T, policy=POLICY)
    assert (after.mode, happened) == (after_mode, change)


def test_a_reopened_breaker_keeps_the_time_it_first_opened() -> None:
    after, _ = record(half_open(5, 0, 3), failed=True, now=T, policy=POLICY)
    assert (after.opened_at, after.retry_at) == (T - 60, T + POLICY.cooldown)


def test_closing_forgets_everything() -> None:
    after, _ = record(half_open(2, 1, 0), failed=False, now=T, policy=POLICY)
    assert after == Breaker()


@pytest.mark.parametrize(
    ("before", "now", "admission", "mode", "probes"),
    [
        # Closed: always, and nothing changes (the hot path needs no write).
        (Breaker(), T, Admission(allowed=True), Mode.CLOSED, 0),
        (counting(5, 5), T, Admission(allowed=True), Mode.CLOSED, 0),
        # Open and resting: held back for what is left of the rest.
        (OPEN, T + 1, Admission(allowed=False, wait=4), Mode.OPEN, 0),
        # Rest over: the first probe turns it half-open.
        (OPEN, T + 5, Admission(allowed=True, probe=True), Mode.HALF_OPEN, 1),
        # Half-open: probes until the budget is spent ...
        (half_open(4, 1, 1), T, Admission(allowed=True, probe=True), Mode.HALF_OPEN, 5),
        # ... then held back while the probes answer ...
        (half_open(5, 1, 1), T, Admission(allowed=False, wait=10), Mode.HALF_OPEN, 5),
        (half_open(5, 1, 1), T + 25, Admission(allowed=False, wait=5), Mode.HALF_OPEN, 5),
        # ... and new probes once their lease ran out (their workers died).
        (half_open(5, 0, 0), T + 30, Admission(allowed=True, probe=True), Mode.HALF_OPEN, 1),
    ],
)
def test_admit(before: Breaker, now: float, admission: Admission, mode: Mode, probes: int) -> None:
    answer, after = admit(before, now=now, policy=POLICY)
    assert (answer, after.mode, after.probes) == (admission, mode, probes)


def test_a_new_round_of_probes_starts_from_zero() -> None:
    _, after = admit(half_open(5, 1, 3), now=T + 30, policy=POLICY)
    assert (after.probe_successes, after.probe_failures, after.retry_at) == (0, 0, T + 60)


def test_the_old_threshold_setting_still_sets_the_minimum_of_calls() -> None:
    assert BreakerPolicy.model_validate({"threshold": 3}).min_calls == 3


def test_a_system_failing_every_first_call_never_opens_and_a_dead_one_soon_does() -> None:
    flaky, dead = Breaker(), Breaker()
    opened_after = None
    for second in range(60):
        # Each second, five new orders' first calls, and the five retries of the second before.
        for call in range(10):
            now, retry = T + second + call / 10, call % 2 == 1 and second > 0
            flaky, _ = record(flaky, failed=not retry, retried=retry, now=now, policy=POLICY)
            if dead.mode is Mode.CLOSED:
                dead, _ = record(dead, failed=True, retried=retry, now=now, policy=POLICY)
                opened_after = now - T if dead.mode is Mode.OPEN else None
        assert flaky.mode is Mode.CLOSED
    assert dead.mode is Mode.OPEN
    assert opened_after == 1.5  # its third failed retry


def test_the_old_and_the_new_name_of_the_minimum_together_are_refused_by_name() -> None:
    with pytest.raises(ValidationError, match="threshold is the old name of min_calls"):
        BreakerPolicy.model_validate({"threshold": 3, "min_calls": 5})
