"""The retry policy as a table: attempt, Retry-After, the dice -> the delay (or give up)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from hub.core.retry_policy import RetryPolicy, next_delay

POLICY = RetryPolicy(max_attempts=5, base_delay=2, max_delay=10)


def highest(low: float, high: float) -> float:
    return high


def lowest(low: float, high: float) -> float:
    return low


@pytest.mark.parametrize(
    ("attempt", "retry_after", "rand", "expected"),
    [
        (1, None, highest, 2),  # ceiling base * 2^0
        (2, None, highest, 4),  # ceiling doubles
        (3, None, highest, 8),
        (4, None, highest, 10),  # capped at max_delay
        (1, None, lowest, 1),  # full jitter may draw 0: still a whole second, never 0 < d < 1
        (2, 0.4, highest, 1),  # a nearly-due Retry-After rounds up to 1 s, never 0.4 s
        (2, 2.0, lowest, 2),  # Retry-After wins over our own draw
        (1, 30.0, highest, 30),  # ... even beyond max_delay
        (5, None, highest, None),  # attempts used up
        (5, 2.0, highest, None),
    ],
)
def test_next_delay(
    attempt: int, retry_after: float | None, rand: object, expected: int | None
) -> None:
    assert next_delay(POLICY, attempt=attempt, retry_after=retry_after, rand=rand) == expected  # type: ignore[arg-type]


def test_every_delay_is_whole_seconds_within_the_ceiling() -> None:
    for attempt in range(1, 5):
        for _ in range(200):
            delay = next_delay(POLICY, attempt=attempt, retry_after=None)
            assert delay is not None
            assert isinstance(delay, int)
            assert 1 <= delay <= min(10, 2 * 2 ** (attempt - 1))


def test_a_max_delay_below_the_base_delay_is_refused() -> None:
    with pytest.raises(ValidationError, match="max_delay must be at least base_delay"):
        RetryPolicy(base_delay=5, max_delay=1)
