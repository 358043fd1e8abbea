"""The rule both step stores apply before a step may start (``hub.core.step_rule``)."""

from __future__ import annotations

import pytest

from hub.core.step_rule import refusal, steps_before

ALL_PENDING = {"inventory": "pending", "fulfillment": "pending", "invoice": "pending"}
RESERVED = {**ALL_PENDING, "inventory": "succeeded"}

CASES = {
    "a new order's first step runs": ("received", "inventory", ALL_PENDING, None),
    "the next step after its predecessor runs": ("processing", "fulfillment", RESERVED, None),
    "a failed (or discarded) order runs nothing": (
        "failed",
        "fulfillment",
        RESERVED,
        "order is failed",
    ),
    "a completed order runs nothing": (
        "completed",
        "invoice",
        {s: "succeeded" for s in ALL_PENDING},
        "order is completed",
    ),
    "a status added later (cancelled) runs nothing": (
        "cancelled",
        "inventory",
        ALL_PENDING,
        "order is cancelled",
    ),
    "a cancelling order's step in flight (its worker lost) finishes": (
        "cancelling",
        "inventory",
        {**ALL_PENDING, "inventory": "running"},
        None,
    ),
    "a cancelling order starts no step that was not in flight": (
        "cancelling",
        "fulfillment",
        RESERVED,
        "order is cancelling",
    ),
    "a cancelling order's step with a retry to come is retried (its call may have landed)": (
        "cancelling",
        "inventory",
        {**ALL_PENDING, "inventory": "error"},
        None,
    ),
    "a cancelling order's step given up on is not tried again": (
        "cancelling",
        "inventory",
        {**ALL_PENDING, "inventory": "failed"},
        "order is cancelling",
    ),
    "a cancelled order's step left running runs no more": (
        "cancelled",
        "inventory",
        {**ALL_PENDING, "inventory": "running"},
        "order is cancelled",
    ),
    "a step before its predecessor is refused": (
        "processing",
        "invoice",
        RESERVED,
        "out of order: fulfillment not succeeded",
    ),
    "a step skipping two is refused, naming both": (
        "received",
        "invoice",
        ALL_PENDING,
        "out of order: inventory, fulfillment not succeeded",
    ),
    "a step the order's pipeline does not have blocks nothing": (
        "processing",
        "invoice",
        {"inventory": "succeeded", "invoice": "pending"},
        None,
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_refusal(case: tuple[str, str, dict[str, str], str | None]) -> None:
    order_status, step, statuses, expected = case
    assert refusal(order_status, step, statuses) == expected


def test_steps_before_follow_the_pipeline() -> None:
    assert steps_before("inventory") == ()
    assert steps_before("invoice") == ("inventory", "fulfillment")
