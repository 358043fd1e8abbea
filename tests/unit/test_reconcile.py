"""Reconciliation as a table: the hub's step records and the ledgers' effects -> what disagrees."""

from __future__ import annotations

import pytest

from hub.services.reconcile import (
    COMPENSATION_MISMATCH,
    COMPENSATION_WITHOUT_RECORD,
    DUPLICATE_COMPENSATION,
    DUPLICATE_EFFECT,
    EFFECT_WITHOUT_SUCCESS,
    ID_MISMATCH,
    INCONSISTENT,
    LIVE_EFFECT,
    MISSING_EFFECT,
    UNKNOWN_ORDER,
    UNSENT_OUTBOX,
    UNSETTLED,
    Compensation,
    Effect,
    NotChecked,
    OrderRecord,
    Rest,
    StepRecord,
    compare,
    compare_compensations,
    not_checked,
    parse_compensations,
    parse_effects,
    settlement,
    where_they_rest,
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


def order(
    status: str, *open_steps: str, order_id: str = A, discarded: tuple[str, ...] = ()
) -> OrderRecord:
    return OrderRecord(order_id, status, frozenset(open_steps), discarded=frozenset(discarded))


def all_steps(status: str, order_id: str = A) -> list[StepRecord]:
    return [
        StepRecord(order_id, name, status, None) for name in ("inventory", "fulfillment", "invoice")
    ]


@pytest.mark.parametrize(
    ("orders", "steps", "unsent", "expected"),
    [
        ([order("completed")], all_steps("succeeded"), 0, []),
        ([order("failed", "inventory")], all_steps("failed"), 0, []),
        ([order("failed")], all_steps("failed"), 0, [UNSETTLED]),  # no failure record at all
        # The 3 a.m. runbook's last step: discard, then reconcile. A discarded failure is at rest.
        ([order("failed", discarded=("inventory",))], all_steps("failed"), 0, []),
        ([order("cancelled")], all_steps("succeeded"), 0, []),  # its steps undone
        ([order("closed")], all_steps("failed"), 0, []),  # ended by an operator as it stood
        ([order("cancelling")], all_steps("succeeded"), 0, [UNSETTLED]),  # undoing under way
        # A compensation that failed for good: an open failure, the operator's turn.
        ([order("cancelling", "fulfillment")], all_steps("succeeded"), 0, []),
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


RESTART = NOW - 60  # the sandbox started (again) a minute ago: its ledger begins then


def succeeded(at: float, order_id: str = A) -> StepRecord:
    return StepRecord(order_id, "inventory", "succeeded", "r1", updated_at=at)


def test_a_step_that_succeeded_before_the_sandbox_restarted_is_not_checked_not_missing() -> None:
    before, after = succeeded(RESTART - 5), succeeded(RESTART + 5, order_id=B)
    started = {"inventory": RESTART}

    found = compare([before, after], [], now=NOW, ledger_started=started)
    assert [(d.order_id, d.problem) for d in found] == [(B, MISSING_EFFECT)]
    assert not_checked([before, after], [], started) == [NotChecked("inventory", 1, RESTART)]


def test_without_a_ledger_start_every_missing_effect_is_a_disagreement() -> None:
    found = compare([succeeded(RESTART - 5)], [], now=NOW)
    assert [d.problem for d in found] == [MISSING_EFFECT]  # the check before this change


def test_an_effect_applied_again_after_a_restart_is_still_compared() -> None:
    # The step's row predates the ledger, but the system has an effect for it: compare ids.
    started = {"inventory": RESTART}
    found = compare([succeeded(RESTART - 5)], [effect("r2")], now=NOW, ledger_started=started)
    assert [d.problem for d in found] == [ID_MISMATCH]
    assert not_checked([succeeded(RESTART - 5)], [effect("r2")], started) == []


def test_where_orders_rest() -> None:
    orders = [
        order("completed"),
        order("failed", "inventory", order_id=B),
        order("failed", order_id="c", discarded=("fulfillment",)),
        order("processing", order_id="d"),
        order("cancelled", order_id="e"),
        order("closed", order_id="f"),
        order("cancelling", "invoice", order_id="g"),
    ]
    assert where_they_rest(orders) == Rest(
        completed=1, waiting=2, discarded=1, cancelled=1, closed=1
    )


def undone_record(
    status: str = "succeeded", compensation: str | None = "succeeded", downstream_id: str = "r1"
) -> StepRecord:
    return StepRecord(A, "inventory", status, downstream_id, OLD, compensation, "c1")


def undo(compensates: str = "r1", *, at: float = OLD, id: str = "c1") -> Compensation:
    return Compensation(A, "inventory", id, compensates, at)


def cancelled(status: str = "cancelled") -> list[OrderRecord]:
    return [OrderRecord(A, status, frozenset())]


@pytest.mark.parametrize(
    ("orders", "record", "undos", "expected"),
    [
        (cancelled(), undone_record(), [undo()], []),  # undone once: clean
        (cancelled(), undone_record(compensation=None), [], [LIVE_EFFECT]),
        (cancelled(), undone_record(status="pending", compensation=None), [], []),  # never done
        (cancelled("closed"), undone_record(compensation=None), [], []),  # left on purpose
        (cancelled(), undone_record(), [undo(), undo(id="c2")], [DUPLICATE_COMPENSATION]),
        (cancelled(), undone_record(), [undo("r9")], [COMPENSATION_MISMATCH]),
        (
            cancelled("cancelling"),
            undone_record(compensation="failed"),
            [undo()],
            [COMPENSATION_WITHOUT_RECORD],
        ),
        (  # its answer on the way: the hub is busy, not wrong
            cancelled("cancelling"),
            undone_record(compensation="running"),
            [undo(at=NOW - 1)],
            [],
        ),
    ],
)
def test_compare_compensations(
    orders: list[OrderRecord],
    record: StepRecord,
    undos: list[Compensation],
    expected: list[str],
) -> None:
    found = compare_compensations(orders, [record], undos, now=NOW)

    assert [d.problem for d in found] == expected


def test_parse_compensations_takes_only_the_undo_keys_of_that_step() -> None:
    ledger = {
        "effects": [
            {"idempotency_key": f"{A}:inventory", "id": "r1", "at": 1},
            {"idempotency_key": f"{A}:inventory:compensate", "id": "c1", "compensates": "r1"},
            {"idempotency_key": f"{A}:fulfillment:compensate", "id": "c2", "compensates": "s1"},
        ]
    }

    assert parse_compensations("inventory", ledger) == [Compensation(A, "inventory", "c1", "r1", 0)]
    assert [e.id for e in parse_effects("inventory", ledger)] == ["r1"]


def test_cancelled_closed_and_stuck_cancelling_orders_are_at_rest() -> None:
    orders = [
        OrderRecord(A, "cancelled", frozenset()),
        OrderRecord(B, "closed", frozenset()),
        OrderRecord("c", "cancelling", frozenset({"fulfillment"})),
        OrderRecord("d", "cancelling", frozenset()),
    ]

    found = settlement(orders, [], unsent_outbox=0)

    assert [(d.order_id, d.problem) for d in found] == [("d", UNSETTLED)]
    assert where_they_rest(orders) == Rest(waiting=1, cancelled=1, closed=1)
