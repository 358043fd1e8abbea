"""The limits' decisions (hub.core.limits): slots, rate, cooling, AIMD, first come first served."""

from __future__ import annotations

import pytest

from hub.core.limits import (
    Grant,
    Shared,
    SystemLimits,
    ThrottlePolicy,
    Wait,
    adaptive_recovered,
    after_throttle,
    decide,
    rate_in_force,
    refill,
)

POLICY = ThrottlePolicy()
FOUR = SystemLimits(max_in_flight=4)


def test_a_free_slot_is_granted_and_must_be_held() -> None:
    assert decide(FOUR, Shared(now=100, held=3), POLICY) == Grant(tokens=None, slot=True)


def test_no_free_slot_means_wait_whole_seconds_at_least_one() -> None:
    answer = decide(FOUR, Shared(now=100, held=4, call_seconds=0.25), POLICY)

    assert answer == Wait(1, "4 in flight")


def test_a_newcomer_yields_a_free_slot_to_steps_that_waited_longer() -> None:
    # One slot free, but two steps deferred before this one are due back now.
    answer = decide(FOUR, Shared(now=100, held=3, ahead=2), POLICY)

    assert isinstance(answer, Wait)


def test_a_step_far_back_in_the_queue_waits_for_its_turn() -> None:
    # 40 ahead, 4 slots, calls of 1 s: about ten rounds before this step's turn.
    answer = decide(FOUR, Shared(now=100, held=4, ahead=40, call_seconds=1.0), POLICY)

    assert answer == Wait(11, "4 in flight")


def test_short_calls_still_count_a_second_per_round_for_waiting_steps() -> None:
    # Calls of 250 ms, 12 waiting ahead and 4 slots: this one's turn is in the 4th round, and a
    # round among deferred steps lasts at least a second (they come back in whole seconds).
    answer = decide(FOUR, Shared(now=100, held=4, ahead=12, call_seconds=0.25), POLICY)

    assert answer == Wait(4, "4 in flight")


def test_the_wait_is_capped_so_a_step_asks_again_keeping_its_place() -> None:
    answer = decide(FOUR, Shared(now=100, held=4, ahead=1000, call_seconds=1.0), POLICY)

    assert isinstance(answer, Wait) and answer.seconds == POLICY.max_wait


def test_a_rate_takes_a_token_and_waits_when_the_bucket_is_empty() -> None:
    twenty = SystemLimits(rate=20)
    first = decide(twenty, Shared(now=100), POLICY)
    assert first == Grant(tokens=19.0, slot=False)

    empty = decide(twenty, Shared(now=100, tokens=0.5, tokens_at=100), POLICY)
    assert empty == Wait(1, "rate 20/s")


@pytest.mark.parametrize(
    ("tokens", "at", "now", "expected"),
    [(None, None, 5, 10.0), (0.0, 0.0, 0.5, 5.0), (0.0, 0.0, 100, 10.0), (3.0, 10.0, 10.0, 3.0)],
)
def test_the_bucket_refills_at_the_rate_up_to_one_second_of_calls(
    tokens: float | None, at: float | None, now: float, expected: float
) -> None:
    assert refill(tokens, at, rate=10, now=now) == expected


def test_a_cooling_system_defers_every_step_to_just_after_it_ends() -> None:
    answer = decide(SystemLimits(), Shared(now=100, cooling_until=103.2), POLICY)

    assert answer == Wait(4, "cooling (429 with Retry-After)")


def test_a_cooling_that_ended_lets_calls_through() -> None:
    assert isinstance(decide(SystemLimits(), Shared(now=104, cooling_until=103), POLICY), Grant)


def test_a_429_with_retry_after_cools_the_system_and_lowers_its_rate() -> None:
    after = after_throttle(SystemLimits(), Shared(now=100), POLICY, retry_after=3)

    assert after.cooling_until == 103 and after.cooling_changed
    assert after.adaptive_rate == POLICY.start_rate * POLICY.decrease and after.decreased


def test_after_a_cooling_the_deferred_steps_come_back_one_at_a_time_at_the_lowered_rate() -> None:
    # A full bucket (twenty calls) when the 429 came: it must not be a burst when cooling ends.
    full = Shared(now=100, tokens=20, tokens_at=90)
    after = after_throttle(SystemLimits(), full, POLICY, retry_after=3)
    assert after.tokens == 1 and after.tokens_at == 103

    rate = POLICY.start_rate * POLICY.decrease + 3 * POLICY.increase  # grown back meanwhile
    ended = Shared(
        now=103,
        tokens=after.tokens,
        tokens_at=after.tokens_at,
        adaptive_rate=after.adaptive_rate,
        adaptive_at=100,
        ahead=0,
    )
    assert decide(SystemLimits(), ended, POLICY) == Grant(tokens=0.0, slot=False)
    # The next one waits for the bucket to refill at the lowered rate.
    emptied = Shared(now=103, tokens=0.0, tokens_at=103, adaptive_rate=10, adaptive_at=100)
    wait = decide(SystemLimits(), emptied, POLICY)
    assert isinstance(wait, Wait) and wait.reason == f"rate {rate:g}/s"


def test_a_429_soon_after_another_still_empties_a_bucket_refilled_meanwhile() -> None:
    # Halved half a second ago; this 429 pushes the cooling further without halving again.
    shared = Shared(now=100.5, tokens=5, tokens_at=100, adaptive_rate=10, adaptive_at=100)
    after = after_throttle(SystemLimits(), shared, POLICY, retry_after=3)
    assert not after.decreased and after.cooling_changed
    assert after.tokens == 1 and after.tokens_at == 103.5


def test_a_later_429_never_shortens_a_cooling() -> None:
    after = after_throttle(
        SystemLimits(), Shared(now=100, cooling_until=110), POLICY, retry_after=3
    )

    assert after.cooling_until == 110 and not after.cooling_changed


def test_repeated_429s_halve_the_rate_once_per_second_down_to_the_floor() -> None:
    limits = SystemLimits(rate=8)
    burst = after_throttle(
        limits, Shared(now=100.5, adaptive_rate=4, adaptive_at=100), POLICY, retry_after=None
    )
    assert not burst.decreased and burst.adaptive_rate == 4

    later = after_throttle(
        limits, Shared(now=101, adaptive_rate=4, adaptive_at=100), POLICY, retry_after=None
    )
    # Grown back by 1/s for a second (5/s), then halved.
    assert later.decreased and later.adaptive_rate == 2.5

    floored = ThrottlePolicy(min_rate=1)
    floor = after_throttle(
        limits, Shared(now=200, adaptive_rate=0.2, adaptive_at=199), floored, retry_after=None
    )
    assert floor.adaptive_rate == 1


def test_the_adaptive_rate_grows_back_and_lapses_at_the_configured_rate() -> None:
    limits = SystemLimits(rate=10)
    lowered = Shared(now=100, adaptive_rate=5, adaptive_at=100)
    assert rate_in_force(limits, lowered, POLICY) == 5
    assert rate_in_force(limits, Shared(now=103, adaptive_rate=5, adaptive_at=100), POLICY) == 8

    grown = Shared(now=106, adaptive_rate=5, adaptive_at=100)
    assert rate_in_force(limits, grown, POLICY) == 10
    assert adaptive_recovered(limits, grown, POLICY)


def test_without_a_configured_rate_the_adaptive_one_lapses_at_the_start_rate() -> None:
    grown = Shared(now=200, adaptive_rate=1, adaptive_at=100)

    assert rate_in_force(SystemLimits(), grown, POLICY) is None
    assert adaptive_recovered(SystemLimits(), grown, POLICY)


def test_limits_refuse_nonsense_by_name() -> None:
    with pytest.raises(ValueError, match="max_in_flight"):
        SystemLimits(max_in_flight=0)
    with pytest.raises(ValueError, match="rate"):
        SystemLimits(rate=-1)
