"""When to try a failed step again: exponential backoff with full jitter, bounded.

A pure function, so the whole policy is a table in ``tests/unit/test_retry_policy.py``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field, model_validator


class RetryPolicy(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    max_attempts: int = Field(default=8, ge=1, le=100)
    base_delay: float = Field(default=1.0, gt=0)
    max_delay: float = Field(default=300.0, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> RetryPolicy:
        if self.max_delay < self.base_delay:
            raise ValueError("max_delay must be at least base_delay")
        return self


def next_delay(
    policy: RetryPolicy,
    *,
    attempt: int,
    retry_after: float | None,
    rand: Callable[[float, float], float] = random.uniform,
) -> int | None:
    """Seconds to wait before attempt ``attempt + 1``, or None when attempts are used up.

    Whole seconds, at least 1: RabbitMQ's native delayed delivery rounds a countdown down to
    whole seconds and kombu refuses 0 < countdown < 1 (the message would be dropped).
    A ``Retry-After`` from the system wins over our own guess, even beyond ``max_delay``:
    calling earlier than it asked would only earn another 429.
    """
    if attempt >= policy.max_attempts:
        return None
    if retry_after is not None:
        return max(1, math.ceil(retry_after))
    return max(1, math.ceil(rand(0, backoff_ceiling(policy, attempt=attempt))))


def backoff_ceiling(policy: RetryPolicy, *, attempt: int) -> float:
    """The most the jittered delay after ``attempt`` may be: doubling, up to ``max_delay``."""
    return min(policy.max_delay, policy.base_delay * 2.0 ** (attempt - 1))
