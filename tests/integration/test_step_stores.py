"""One contract, every step store: the same moves leave the same records.

The hub keeps its step records two ways (``hub.core.ports.store.StepStore``): PostgreSQL's one
statement per move (``hub.db.hot_path``) and the ORM's few statements in a transaction
(``hub.db.step_store``), which trial mode runs on SQLite. Each test here runs against the
one-statement store, the ORM store on PostgreSQL and the ORM store on a SQLite file migrated
by the same migrations, and asserts the same thing: what each move returns, the rows it leaves
and the audit rows it writes (their payloads are written twice, once per store, so a drift
between the two shows up here). The give-up record (``StepRecorder``) is in the contract too.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hub.core.errors import PermanentError, TransientError
from hub.core.ports.store import StepRecorder, StepStore
from hub.core.registry import Pipeline
from hub.core.schemas import OrderIn
from hub.core.steps import (
    AlreadyDone,
    BreakerNotClosed,
    OrderNotFound,
    Outcome,
    RetryPlan,
    Started,
)
from hub.db import migrate
from hub.db.engine import engine_for, get_engine, unit_of_work
from hub.db.failures import SqlStepRecorder
from hub.db.hot_path import PostgresStepStore
from hub.db.models import BreakerState, Failure, IntegrationEvent, Order, StepOutcome
from hub.db.step_store import SqlStepStore
from hub.services.intake import accept_order
from hub.settings import get_settings
from tests.factories import order_payload

Sessions = Callable[[], AbstractContextManager[Session]]
THREE = Pipeline(("inventory", "fulfillment", "invoice"))


@dataclass(frozen=True)
class Backend:
    store: StepStore
    recorder: StepRecorder
    sessions: Sessions

    def new_order(self, pipeline: Pipeline = THREE) -> uuid.UUID:
        payload = OrderIn.model_validate(order_payload())
        with self.sessions() as session:
            accepted = accept_order(
                session, payload, idempotency_key=None, sender="tests", pipeline=pipeline
            )
        return accepted.order_id

    def order_status(self, order_id: uuid.UUID) -> str:
        with self.sessions() as session:
            status = session.scalar(select(Order.status).where(Order.id == order_id))
        assert status is not None
        return str(status)

    def step(self, order_id: uuid.UUID, step: str) -> StepOutcome:
        with self.sessions() as session:
            row = session.get(StepOutcome, (order_id, step))
            assert row is not None
            session.expunge(row)
            return row

    def trail(self, order_id: uuid.UUID) -> list[tuple[Any, ...]]:
        """The order's audit rows after its intake: (event, step, attempt, status, detail),
        with the one measured figure (a duration) taken out."""
        with self.sessions() as session:
            events = session.scalars(
                select(IntegrationEvent)
                .where(IntegrationEvent.order_id == order_id)
                .order_by(IntegrationEvent.seq)
            ).all()
        return [
            (
                e.event_type,
                e.step,
                e.attempt,
                e.status,
                {k: v for k, v in e.detail.items() if k != "duration_ms"},
            )
            for e in events
            if e.event_type != "order.received"
        ]

    def open_breaker(self, system: str) -> None:
        with self.sessions() as session:
            session.add(BreakerState(system=system, state="open"))


def _sqlite(tmp_path: Path) -> Sessions:
    url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    migrate.upgrade(url)  # the same migrations as PostgreSQL
    factory = sessionmaker(bind=engine_for(url), expire_on_commit=False)

    @contextmanager
    def sessions() -> Iterator[Session]:
        session = factory()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    return sessions


@pytest.fixture(params=["one statement, PostgreSQL", "ORM, PostgreSQL", "ORM, SQLite"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    window = get_settings().breaker.window
    if request.param == "one statement, PostgreSQL":
        store: StepStore = PostgresStepStore(get_engine(), breaker_window=window)
        return Backend(store, SqlStepRecorder(), unit_of_work)
    sessions = unit_of_work if request.param == "ORM, PostgreSQL" else _sqlite(tmp_path)
    store = SqlStepStore(breaker_window=window, sessions=sessions)
    return Backend(store, SqlStepRecorder(sessions), sessions)


def test_a_first_start_spends_one_attempt_and_carries_the_order(backend: Backend) -> None:
    order_id = backend.new_order()
    begun = backend.store.begin(order_id, "inventory", gate_passed=False)

    assert isinstance(begun, Started)
    assert (begun.attempt, begun.earlier, begun.results) == (1, {}, {})
    payload = order_payload()
    assert begun.order.id == order_id
    assert begun.order.currency == payload["currency"]
    assert begun.order.customer == payload["customer"]
    assert [(line.sku, line.qty) for line in begun.order.lines] == [
        (line["sku"], line["qty"]) for line in payload["lines"]
    ]
    # Money as the decimal string of the column's scale (4), the same in every store.
    assert [line.unit_price for line in begun.order.lines] == ["19.9000", "5.0000"]
    row = backend.step(order_id, "inventory")
    assert (row.status, row.attempts) == ("running", 1)
    assert backend.order_status(order_id) == "processing"
    assert backend.trail(order_id) == [("step.started", "inventory", 1, "ok", {})]


def test_a_success_is_kept_and_passed_on_to_the_later_steps(backend: Backend) -> None:
    order_id = backend.new_order()
    backend.store.begin(order_id, "inventory", gate_passed=False)
    outcome = Outcome("R-1", {"reservation_id": "R-1", "lines": 2})
    assert backend.store.succeed(order_id, "inventory", attempt=1, outcome=outcome, seconds=0.02)

    row = backend.step(order_id, "inventory")
    assert (row.status, row.downstream_id, row.result) == ("succeeded", "R-1", outcome.result)
    begun = backend.store.begin(order_id, "fulfillment", gate_passed=False)
    assert isinstance(begun, Started)
    assert begun.earlier == {"inventory": "R-1"}
    assert begun.results == {"inventory": outcome.result}
    assert backend.trail(order_id)[1] == (
        "step.succeeded",
        "inventory",
        1,
        "ok",
        {"downstream_id": "R-1"},
    )


def test_a_step_that_succeeded_is_skipped_not_run_again(backend: Backend) -> None:
    order_id = backend.new_order()
    backend.store.begin(order_id, "inventory", gate_passed=False)
    backend.store.succeed(order_id, "inventory", attempt=1, outcome=Outcome("R-1"), seconds=0)
    # A late twin's success changes nothing.
    backend.store.succeed(order_id, "inventory", attempt=2, outcome=Outcome("R-2"), seconds=0)

    assert backend.store.begin(order_id, "inventory", gate_passed=False) == AlreadyDone()
    row = backend.step(order_id, "inventory")
    assert (row.attempts, row.downstream_id) == (1, "R-1")
    assert backend.trail(order_id)[-1] == (
        "step.skipped",
        "inventory",
        1,
        "ok",
        {"downstream_id": "R-1", "reason": "already succeeded; stored result passed on"},
    )


@pytest.mark.parametrize("pipeline", [THREE, Pipeline(("inventory", "fulfillment"))])
def test_the_orders_own_last_step_completes_it(backend: Backend, pipeline: Pipeline) -> None:
    order_id = backend.new_order(pipeline)
    for n, step in enumerate(pipeline.steps):
        assert backend.order_status(order_id) != "completed"
        assert isinstance(backend.store.begin(order_id, step, gate_passed=False), Started)
        backend.store.succeed(order_id, step, attempt=1, outcome=Outcome(f"D-{n}"), seconds=0)

    assert backend.order_status(order_id) == "completed"
    assert [event[0] for event in backend.trail(order_id)][-2:] == [
        "step.succeeded",
        "order.completed",
    ]


def test_a_failed_attempt_records_the_error_and_its_retry(backend: Backend) -> None:
    order_id = backend.new_order()
    backend.store.begin(order_id, "inventory", gate_passed=False)
    error = TransientError("erp", "503 from the ERP", status=503, retry_after=7)
    backend.store.fail(order_id, "inventory", attempt=1, error=error, retry=RetryPlan(7, 4.0))
    backend.store.begin(order_id, "inventory", gate_passed=False)
    final = PermanentError("erp", "unknown sku", status=422, code="unknown_sku")
    backend.store.fail(order_id, "inventory", attempt=2, error=final, retry=None)

    row = backend.step(order_id, "inventory")
    assert (row.status, row.attempts, row.last_error) == ("error", 2, str(final))
    transient = {
        "kind": "transient",
        "system": "erp",
        "http_status": 503,
        "code": None,
        "message": "503 from the ERP",
    }
    assert backend.trail(order_id) == [
        ("step.started", "inventory", 1, "ok", {}),
        ("step.failed", "inventory", 1, "error", transient),
        (
            "step.retry_scheduled",
            "inventory",
            1,
            "retry",
            {
                "delay_s": 7,
                "backoff_ceiling_s": 4.0,
                "retry_after_s": 7,
                "reason": str(error),
                **transient,
            },
        ),
        ("step.started", "inventory", 2, "ok", {}),
        (
            "step.failed",
            "inventory",
            2,
            "error",
            {
                "kind": "permanent",
                "system": "erp",
                "http_status": 422,
                "code": "unknown_sku",
                "message": "unknown sku",
            },
        ),
    ]


def test_a_failure_after_a_success_is_ignored(backend: Backend) -> None:
    order_id = backend.new_order()
    backend.store.begin(order_id, "inventory", gate_passed=False)
    backend.store.succeed(order_id, "inventory", attempt=1, outcome=Outcome("R-1"), seconds=0)
    error = TransientError("erp", "timed out")
    backend.store.fail(order_id, "inventory", attempt=1, error=error, retry=RetryPlan(1, 1.0))

    assert backend.step(order_id, "inventory").status == "succeeded"
    assert [event[0] for event in backend.trail(order_id)] == ["step.started", "step.succeeded"]


def test_a_breaker_that_is_not_closed_starts_nothing_until_its_gate_is_passed(
    backend: Backend,
) -> None:
    order_id = backend.new_order()
    backend.open_breaker("erp")

    assert backend.store.begin(order_id, "inventory", gate_passed=False) == BreakerNotClosed()
    assert backend.step(order_id, "inventory").attempts == 0
    begun = backend.store.begin(order_id, "inventory", gate_passed=True)
    assert isinstance(begun, Started) and begun.attempt == 1
    # The success must be told to the breaker too: the store says it is not closed.
    ok = backend.store.succeed(order_id, "inventory", attempt=1, outcome=Outcome("R"), seconds=0)
    assert ok is False


def test_an_unknown_order_is_not_found(backend: Backend) -> None:
    with pytest.raises(OrderNotFound):
        backend.store.begin(uuid.uuid4(), "inventory", gate_passed=False)


def test_giving_up_fails_the_order_with_one_open_failure(backend: Backend) -> None:
    order_id = backend.new_order()
    backend.store.begin(order_id, "inventory", gate_passed=False)
    error = PermanentError("erp", "unknown sku", status=422, code="unknown_sku")
    backend.store.fail(order_id, "inventory", attempt=1, error=error, retry=None)
    for _ in range(2):  # a second report refreshes the same record
        backend.recorder.gave_up(order_id, "inventory", kind="permanent", error=error, attempts=1)

    assert backend.order_status(order_id) == "failed"
    assert backend.step(order_id, "inventory").status == "failed"
    with backend.sessions() as session:
        failures = session.scalars(select(Failure).where(Failure.order_id == order_id)).all()
        assert [(f.step, f.state, f.error_kind, f.error_code) for f in failures] == [
            ("inventory", "open", "permanent", "unknown_sku")
        ]
    assert backend.trail(order_id)[-1][:4] == ("order.failed", "inventory", 1, "error")
