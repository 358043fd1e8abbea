"""Step idempotency, with fakes of the hub's own ports (the store and the downstream call)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import pytest

from hub.core.errors import DownstreamError, PermanentError, TransientError
from hub.core.steps import (
    AlreadyDone,
    OrderSnapshot,
    Outcome,
    Started,
    StepFailed,
    idempotency_key,
    perform,
)


@dataclass
class FakeStore:
    succeeded: dict[tuple[uuid.UUID, str], Outcome] = field(default_factory=dict)
    attempts: dict[tuple[uuid.UUID, str], int] = field(default_factory=dict)
    failures: list[tuple[str, int, DownstreamError]] = field(default_factory=list)

    def begin(self, order_id: uuid.UUID, step: str) -> Started | AlreadyDone:
        if (order_id, step) in self.succeeded:
            return AlreadyDone(self.succeeded[(order_id, step)])
        attempt = self.attempts.get((order_id, step), 0) + 1
        self.attempts[(order_id, step)] = attempt
        order = OrderSnapshot(order_id, {}, {}, "EUR", [{"sku": "A", "qty": 1}])
        return Started(order=order, attempt=attempt, earlier={})

    def succeed(
        self, order_id: uuid.UUID, step: str, *, attempt: int, outcome: Outcome, seconds: float
    ) -> None:
        self.succeeded[(order_id, step)] = outcome

    def fail(self, order_id: uuid.UUID, step: str, *, attempt: int, error: DownstreamError) -> None:
        self.failures.append((step, attempt, error))


@dataclass
class FakeSystem:
    """Answers with one id per key, as the contract requires; counts every call."""

    errors: list[DownstreamError] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)

    def __call__(self, started: Started, key: str) -> Outcome:
        self.calls.append(key)
        if self.errors:
            raise self.errors.pop(0)
        return Outcome(f"R-{key}", {"reservation_id": f"R-{key}"})


def test_a_step_that_succeeded_is_not_called_again_and_passes_its_result_on() -> None:
    store, system, order_id = FakeStore(), FakeSystem(), uuid.uuid4()

    first = perform(order_id, "inventory", store=store, call=system)
    second = perform(order_id, "inventory", store=store, call=system)

    assert second == first
    assert system.calls == [idempotency_key(order_id, "inventory")]


def test_every_call_carries_the_order_and_step_as_idempotency_key() -> None:
    store, system, order_id = FakeStore(), FakeSystem(), uuid.uuid4()

    perform(order_id, "fulfillment", store=store, call=system)

    assert system.calls == [f"{order_id}:fulfillment"]


@pytest.mark.parametrize(
    "error",
    [
        TransientError(system="erp", message="down", status=503),
        PermanentError(system="erp", message="no stock", status=409, code="out_of_stock"),
    ],
)
def test_a_failed_call_is_recorded_with_its_attempt_and_nothing_is_stored(
    error: DownstreamError,
) -> None:
    store, system, order_id = FakeStore(), FakeSystem(errors=[error]), uuid.uuid4()

    with pytest.raises(StepFailed) as raised:
        perform(order_id, "inventory", store=store, call=system)

    assert raised.value.error is error
    assert raised.value.attempt == 1
    assert store.failures == [("inventory", 1, error)]
    assert store.succeeded == {}


def test_a_retry_after_a_failure_counts_the_next_attempt_and_reuses_the_key() -> None:
    flaky = TransientError(system="erp", message="timeout")
    store, system, order_id = FakeStore(), FakeSystem(errors=[flaky]), uuid.uuid4()

    with pytest.raises(StepFailed):
        perform(order_id, "inventory", store=store, call=system)
    outcome = perform(order_id, "inventory", store=store, call=system)

    assert store.attempts[(order_id, "inventory")] == 2
    assert system.calls == [f"{order_id}:inventory"] * 2
    assert outcome.downstream_id == f"R-{order_id}:inventory"
