"""Running a step (``hub.services.run_step``): the breaker gate, the attempt, retry, give-up.

Driven on fakes of its ports; each row is one situation and what the worker is told to do.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import pytest

from hub.core.errors import DownstreamError, PermanentError, TransientError
from hub.core.retry_policy import RetryPolicy
from hub.core.steps import AlreadyDone, OrderNotFound, OrderSnapshot, Outcome, Started
from hub.services.run_step import Decision, Done, GiveUp, Retry, StepPorts, run_step

ORDER = uuid.UUID("00000000-0000-4000-8000-000000000001")
# Three attempts at most; the jitter is pinned to its ceiling, so the delays are 2 s, 4 s ...
POLICY = RetryPolicy(max_attempts=3, base_delay=2.0, max_delay=60.0)


@dataclass
class FakeStore:
    done: Outcome | None = None
    attempts: int = 0
    missing: bool = False
    failed: list[int] = field(default_factory=list)
    succeeded: list[int] = field(default_factory=list)

    def begin(self, order_id: uuid.UUID, step: str) -> Started | AlreadyDone:
        if self.missing:
            raise OrderNotFound(f"no order {order_id}")
        if self.done is not None:
            return AlreadyDone(self.done)
        self.attempts += 1
        order = OrderSnapshot(order_id, {}, {}, "EUR", [{"sku": "A", "qty": 1}])
        return Started(order=order, attempt=self.attempts, earlier={})

    def succeed(
        self, order_id: uuid.UUID, step: str, *, attempt: int, outcome: Outcome, seconds: float
    ) -> None:
        self.succeeded.append(attempt)

    def fail(self, order_id: uuid.UUID, step: str, *, attempt: int, error: DownstreamError) -> None:
        self.failed.append(attempt)


@dataclass
class FakeSystem:
    error: DownstreamError | None = None
    calls: int = 0

    def __call__(self, started: Started, key: str) -> Outcome:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return Outcome("R-1", {"reservation_id": "R-1"})


@dataclass
class FakeBreaker:
    open_for: int | None = None
    noted: list[str] = field(default_factory=list)

    def hold(self, order_id: uuid.UUID, step: str, system: str) -> int | None:
        return self.open_for

    def note(self, system: str, error: DownstreamError | None) -> None:
        self.noted.append(f"{system}:{'ok' if error is None else error.kind}")


@dataclass
class FakeRecorder:
    retries: list[tuple[int, int]] = field(default_factory=list)  # (attempt, delay)
    give_ups: list[tuple[str, int]] = field(default_factory=list)  # (kind, attempts)

    def retry_scheduled(
        self, order_id: uuid.UUID, step: str, *, error: DownstreamError, attempt: int, delay: int
    ) -> None:
        self.retries.append((attempt, delay))

    def gave_up(
        self, order_id: uuid.UUID, step: str, *, kind: str, error: DownstreamError, attempts: int
    ) -> None:
        self.give_ups.append((kind, attempts))


@dataclass
class World:
    store: FakeStore = field(default_factory=FakeStore)
    system: FakeSystem = field(default_factory=FakeSystem)
    breaker: FakeBreaker = field(default_factory=FakeBreaker)
    recorder: FakeRecorder = field(default_factory=FakeRecorder)

    def run(self) -> Decision:
        ports = StepPorts(
            store=self.store,
            calls={"inventory": self.system},
            breaker=self.breaker,
            recorder=self.recorder,
            retry_policy=lambda step: POLICY,
            rand=lambda low, high: high,
        )
        return run_step(ORDER, "inventory", ports=ports)


TRANSIENT = TransientError(system="erp", message="busy", status=503)
SLOW_DOWN = TransientError(system="erp", message="slow down", status=429, retry_after=30)
PERMANENT = PermanentError(system="erp", message="out of stock", status=409, code="out_of_stock")


@dataclass(frozen=True)
class Case:
    given: World
    decision: Decision
    calls: int
    attempts: int  # attempts the store counted
    retries: list[tuple[int, int]]
    give_ups: list[tuple[str, int]]
    noted: list[str]


CASES = {
    "breaker open: deferred, system not called, no attempt spent": Case(
        World(breaker=FakeBreaker(open_for=7)), Retry(7), 0, 0, [], [], []
    ),
    "transient error: retried after the backoff, failure counted by the breaker": Case(
        World(system=FakeSystem(TRANSIENT)),
        Retry(2, TRANSIENT),
        1,
        1,
        [(1, 2)],
        [],
        ["erp:transient"],
    ),
    "transient error with Retry-After: retried when the system said": Case(
        World(system=FakeSystem(SLOW_DOWN)),
        Retry(30, SLOW_DOWN),
        1,
        1,
        [(1, 30)],
        [],
        ["erp:transient"],
    ),
    "permanent error: given up at once, recorded as permanent": Case(
        World(system=FakeSystem(PERMANENT)),
        GiveUp(str(PERMANENT)),
        1,
        1,
        [],
        [("permanent", 1)],
        ["erp:permanent"],
    ),
    "transient error on the last attempt: given up, recorded as exhausted": Case(
        World(store=FakeStore(attempts=2), system=FakeSystem(TRANSIENT)),
        GiveUp(str(TRANSIENT)),
        1,
        3,
        [],
        [("exhausted", 3)],
        ["erp:transient"],
    ),
    "success: done, success noted by the breaker": Case(
        World(), Done(Outcome("R-1", {"reservation_id": "R-1"})), 1, 1, [], [], ["erp:ok"]
    ),
    "already done: not called again, its outcome passed on": Case(
        World(store=FakeStore(done=Outcome("R-0"))), Done(Outcome("R-0")), 0, 0, [], [], ["erp:ok"]
    ),
    "unknown order: given up without a record": Case(
        World(store=FakeStore(missing=True)), GiveUp(f"no order {ORDER}"), 0, 0, [], [], []
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_run_step(case: Case) -> None:
    world = case.given
    decision = world.run()
    assert decision == case.decision
    assert world.system.calls == case.calls
    assert world.store.attempts == case.attempts
    assert world.recorder.retries == case.retries
    assert world.recorder.give_ups == case.give_ups
    assert world.breaker.noted == case.noted
