"""Reconciliation as a table: the hub's step records and the ledgers' effects -> what disagrees."""

from __future__ import annotations

import pytest

from hub.services.reconcile import (
    DUPLICATE_EFFECT,
    EFFECT_WITHOUT_SUCCESS,
    ID_MISMATCH,
    INCONSISTENT,
    MISSING_EFFECT,
    UNKNOWN_ORDER,
    UNSENT_OUTBOX,
    UNSETTLED,
    Effect,
    OrderRecord,
    StepRecord,
    compare,
    parse_effects,
    settlement,
)

NOW = 1_000_000.0
OLD = NOW - 600  # an effect long past any grace
A = "11111111-1111-1111-1111-111111111111"
B = "22222222-2222-2222-2222-222222222222"


def step(status: str, downstream_id: str | None = None, order_id: str = A) -> StepRecord:
    return StepRecord(order_id, "inventory", status, downstream_id)


def effect(id: str, *, at: float = OLD, order_id: str = A) -> Effect:
    return Effect(order_id, "inventory", id, at)


@pytest.mark.parametrize(
    ("records", "effects", "expected"),
    [
        ([step("succeeded", "r1")], [effect("r1")], []),  # agree
        ([step("pending")], [], []),  # not started, nothing applied
        ([step("failed")], [], []),  # gave up, nothing applied
        ([step("succeeded", "r1")], [], [MISSING_EFFECT]),
        ([step("succeeded", "r1")], [effect("r2")], [ID_MISMATCH]),
        ([step("succeeded", "r1")], [effect("r1"), effect("r2")], [DUPLICATE_EFFECT]),
        ([step("failed")], [effect("r1")], [EFFECT_WITHOUT_SUCCESS]),
        ([step("error")], [effect("r1")], [EFFECT_WITHOUT_SUCCESS]),  # past the grace
        ([step("running")], [effect("r1", at=NOW - 1)], []),  # in flight: the hub is busy
        ([step("error")], [effect("r1", at=NOW - 1)], []),  # answer lost, retry on its way
        ([step("failed")], [effect("r1", at=NOW - 1)], [EFFECT_WITHOUT_SUCCESS]),  # no retry
        ([], [effect("r1")], [UNKNOWN_ORDER]),
        (
            [step("failed")],
            [effect("r1"), effect("r2")],
            [DUPLICATE_EFFECT, EFFECT_WITHOUT_SUCCESS],
        ),
    ],
)
def test_compare(records: list[StepRecord], effects: list[Effect], expected: list[str]) -> None:
    found = compare(records, effects, now=NOW, grace=30)
    assert [d.problem for d in found] == expected


def test_compare_names_the_order_and_step() -> None:
    [found] = compare([step("succeeded", "r1")], [], now=NOW)
    assert (found.order_id, found.step) == (A, "inventory")
    assert "r1" in found.detail


def test_only_limits_the_check_to_those_orders_and_ignores_other_effects() -> None:
    records = [step("succeeded", "r1"), step("succeeded", "r9", order_id=B)]
    effects = [effect("r1"), effect("x", order_id="someone-else")]

    assert compare(records, effects, now=NOW, only={A}) == []
    assert [d.problem for d in compare(records, effects, now=NOW, only={B})] == [MISSING_EFFECT]


def test_parse_effects_keeps_the_step_of_each_key() -> None:
    ledger = {
        "effects": [
            {"idempotency_key": f"{A}:inventory", "order_id": A, "id": "r1", "at": OLD},
            {"idempotency_key": f"{A}:fulfillment", "order_id": A, "id": "s1", "at": OLD},
        ]
    }

    assert parse_effects("inventory", ledger) == [Effect(A, "inventory", "r1", OLD)]


def order(status: str, *open_steps: str, order_id: str = A) -> OrderRecord:
    return OrderRecord(order_id, status, frozenset(open_steps))


def all_steps(status: str, order_id: str = A) -> list[StepRecord]:
    return [
        StepRecord(order_id, name, status, None) for name in ("inventory", "fulfillment", "invoice")
    ]


@pytest.mark.parametrize(
    ("orders", "steps", "unsent", "expected"),
    [
        ([order("completed")], all_steps("succeeded"), 0, []),
        ([order("failed", "inventory")], all_steps("failed"), 0, []),
        ([order("failed")], all_steps("failed"), 0, [UNSETTLED]),  # no open failure record
        ([order("processing")], all_steps("running"), 0, [UNSETTLED]),
        ([order("received")], all_steps("pending"), 0, [UNSETTLED]),
        ([order("completed")], all_steps("pending"), 0, [INCONSISTENT]),
        ([order("completed")], all_steps("succeeded"), 2, [UNSENT_OUTBOX]),
    ],
)
def test_settlement(
    orders: list[OrderRecord], steps: list[StepRecord], unsent: int, expected: list[str]
) -> None:
    assert [d.problem for d in settlement(orders, steps, unsent_outbox=unsent)] == expected
