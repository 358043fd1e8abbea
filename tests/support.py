"""Real services for integration and end-to-end tests: reach them or fail naming them."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterable

import pytest
from kombu.connection import Connection
from sqlalchemy import text

from hub.broker.topology import Topology
from hub.core.schemas import OrderIn
from hub.db import migrate
from hub.db.engine import get_engine, unit_of_work
from hub.db.failures import FailureReport, record_failure
from hub.db.models import Failure
from hub.observability.health import postgres_problem, rabbitmq_problem
from hub.services import keys
from hub.services.intake import accept_order
from hub.settings import get_settings
from tests.factories import order_payload

TABLES = (
    "orders, order_lines, outbox, step_outcomes, integration_events, failures, breakers, api_keys,"
    " audit_counts, audit_fold, system_limits, system_slots, system_waiters, operators"
)


# Set once a test of this process has reached the services: the session's end then deletes the
# queues and exchanges the suite declared (tests/broker_cleanup.py).
USED_SERVICES = False


def require_services() -> None:
    global USED_SERVICES
    USED_SERVICES = True
    settings = get_settings()
    with contextlib.suppress(Exception):  # the check below names what is wrong
        migrate.ensure_database(settings.database_url)
    for problem in (postgres_problem(settings), rabbitmq_problem(settings)):
        if problem:
            pytest.fail(f"this test needs {problem.service}:\n{problem}", pytrace=False)


def fresh_schema() -> None:
    """Drop everything the tests' database holds and migrate it from empty."""
    url = get_settings().database_url
    migrate.ensure_database(url)
    with get_engine().begin() as connection:
        # Leftovers of an interrupted run (a worker, a relay) must not hold locks on the tables.
        connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
        connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    # The terminated backends include this process's own idle pooled connections: drop them
    # all, or the next checkout hands a test a dead one ("server closed the connection").
    get_engine().dispose()
    migrate.upgrade(url)


def truncate_tables() -> None:
    with get_engine().begin() as connection:
        connection.execute(text(f"TRUNCATE {TABLES} CASCADE"))


def reset_breakers() -> None:
    with get_engine().begin() as connection:
        connection.execute(text("DELETE FROM breakers"))
        # A 429's cooling, slots and waiters of one test must not slow the next either.
        connection.execute(text("DELETE FROM system_limits"))
        connection.execute(text("DELETE FROM system_slots"))
        connection.execute(text("DELETE FROM system_waiters"))


def broker_connection() -> Connection:
    return Connection(get_settings().broker_url, connect_timeout=5)


def declare_and_purge_queues() -> None:
    topology = Topology(get_settings().queue_prefix)
    with broker_connection() as connection:
        channel = connection.channel()
        for queue in [*topology.work_queues(), topology.failure_queue()]:
            bound = queue.bind(channel)
            bound.declare()
            bound.purge()


def queue_depth(name: str) -> int:
    with broker_connection() as connection:
        _, messages, _ = connection.default_channel.queue_declare(name, passive=True)
        return int(messages)


def work_queue_names() -> list[str]:
    topology = Topology(get_settings().queue_prefix)
    return [topology.queue_name(step) for step in get_settings().pipeline.steps]


def wait_for(
    condition: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.2
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what}", pytrace=False)


def statuses(order_ids: Iterable[uuid.UUID | str]) -> dict[str, str]:
    ids = [str(i) for i in order_ids]
    with get_engine().connect() as connection:
        rows = connection.execute(
            text("SELECT id::text, status FROM orders WHERE id::text = ANY(:ids)"), {"ids": ids}
        )
        return {row[0]: row[1] for row in rows}


def api_key_headers(sender: str = "tests") -> dict[str, str]:
    """Intake credentials: a new key of ``sender`` in the tests' database (tables are truncated
    between tests, so make one per test)."""
    with unit_of_work() as session:
        new = keys.create_key(session, sender)
    return {"Authorization": f"Bearer {new.token}"}


def api_key_is_live(headers: dict[str, str]) -> bool:
    token = headers.get("Authorization", "").removeprefix("Bearer ")
    with unit_of_work() as session:
        row = keys.find_key(session, token)
        return row is not None and row.revoked_at is None


def make_failure(
    *,
    step: str = "inventory",
    kind: str = "permanent",
    message: str = "out of stock: SKU-001",
    http_status: int | None = 409,
    code: str | None = "out_of_stock",
    attempts: int = 1,
) -> Failure:
    """An accepted order (its intake outbox row left unsent) that gave up at ``step``."""
    with unit_of_work() as session:
        accepted = accept_order(
            session, OrderIn.model_validate(order_payload()), idempotency_key=None, sender="tests"
        )
        failure = record_failure(
            session,
            FailureReport(
                order_id=accepted.order_id,
                step=step,
                kind=kind,
                message=message,
                attempts=attempts,
                http_status=http_status,
                code=code,
            ),
        )
    assert failure is not None
    return failure
