"""SQLite in trial mode behaves like PostgreSQL where the hub relies on it (a file, no server)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect, select
from sqlalchemy.orm import Session, sessionmaker

from hub.core.breaker import BreakerPolicy
from hub.core.errors import TransientError
from hub.core.schemas import OrderIn
from hub.db import audit, breaker, migrate
from hub.db.engine import engine_for
from hub.db.models import BreakerState, IntegrationEvent, Order
from hub.services.intake import accept_order
from tests.factories import order_payload


@pytest.fixture
def sessions(tmp_path: Path) -> sessionmaker[Session]:
    url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    migrate.upgrade(url)  # the same migrations as PostgreSQL
    return sessionmaker(bind=engine_for(url), expire_on_commit=False)


def test_the_migrations_build_the_whole_schema_on_sqlite(sessions: sessionmaker[Session]) -> None:
    with sessions() as session:
        bind = session.get_bind()
        tables = set(inspect(bind).get_table_names())
        assert {"orders", "outbox", "integration_events", "failures", "api_keys"} <= tables
        assert session.scalar(select(IntegrationEvent.id).limit(1)) is None
        assert bind.dialect.name == "sqlite"


def test_the_same_order_twice_is_one_order(sessions: sessionmaker[Session]) -> None:
    order = OrderIn.model_validate(order_payload())
    with sessions.begin() as session:
        first = accept_order(session, order, idempotency_key="key-1", sender="tests")
    with sessions.begin() as session:
        again = accept_order(session, order, idempotency_key="key-1", sender="tests")

    assert first.created and first.outbox_id == 1
    assert not again.created and again.order_id == first.order_id
    with sessions() as session:
        assert len(session.scalars(select(Order)).all()) == 1


def test_audit_rows_are_numbered_in_commit_order(sessions: sessionmaker[Session]) -> None:
    order_id = uuid.uuid4()
    with sessions.begin() as session:  # two rows in one flush
        audit.record(session, audit.RECEIVED, order_id=order_id)
        audit.record(session, audit.QUEUED, order_id=order_id)
    with sessions.begin() as session:
        audit.record(session, audit.COMPLETED, order_id=order_id)

    with sessions() as session:
        kinds = [event.event_type for event in audit.timeline(session, order_id)]
        seqs = session.scalars(select(IntegrationEvent.seq).order_by(IntegrationEvent.seq)).all()
    assert kinds == [audit.RECEIVED, audit.QUEUED, audit.COMPLETED]
    assert list(seqs) == [1, 2, 3]


def test_times_come_back_aware_in_utc(sessions: sessionmaker[Session]) -> None:
    order = OrderIn.model_validate(order_payload())
    with sessions.begin() as session:
        accepted = accept_order(session, order, idempotency_key=None, sender="tests")
    with sessions() as session:
        stored = session.get(Order, accepted.order_id)
        assert stored is not None
        assert stored.created_at.tzinfo is not None  # the migrations' now() default
        assert abs(datetime.now(UTC) - stored.created_at) < timedelta(minutes=1)


def test_the_shared_breaker_opens_and_holds_calls(sessions: sessionmaker[Session]) -> None:
    policy = BreakerPolicy(min_calls=2, min_retry_failures=0, cooldown=30)
    down = TransientError("erp", "connection refused")
    for _ in range(2):
        with sessions.begin() as session:
            breaker.record_outcome(session, "erp", policy, error=down)

    with sessions.begin() as session:
        admission = breaker.admit_call(session, "erp", policy)
        state = session.get(BreakerState, "erp")
    assert not admission.allowed and 0 < admission.wait <= 30
    assert state is not None and state.state == "open" and state.held == 1
