"""A snapshot query that runs past its statement timeout is a slow query, named, never
"PostgreSQL unreachable": ``hub status``, ``/metrics`` and the snapshot itself say so.

The slow query is made by a lock, not by a size: another session holds ``orders`` in ACCESS
EXCLUSIVE mode, so the snapshot's first query (orders by status) waits until its timeout.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, text

from hub.db.engine import get_engine
from hub.entrypoints.api import create_api
from hub.observability.health import SlowQuery
from hub.observability.snapshot.database import read_database
from hub.settings import get_settings


@pytest.fixture
def orders_locked() -> Iterator[Connection]:
    with get_engine().connect() as connection:
        transaction = connection.begin()
        connection.execute(text("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE"))
        try:
            yield connection
        finally:
            transaction.rollback()


def test_the_snapshot_names_the_query_that_ran_past_its_timeout(
    orders_locked: Connection,
) -> None:
    found = read_database(get_settings(), timeout=0.5)

    assert isinstance(found, SlowQuery), found
    assert found.query == "orders by status"
    assert found.answered
    assert "slow" in found.headline and "unreachable" not in found.headline
    assert "statement timeout" in found.headline
    assert "pg_ctlcluster" not in str(found)  # nothing to start: the server is there


def test_metrics_say_postgresql_answered_and_which_query_was_slow(
    orders_locked: Connection,
) -> None:
    reply = TestClient(create_api(get_settings())).get("/metrics")

    assert reply.status_code == 200
    assert 'hub_dependency_up{service="postgresql"} 1.0' in reply.text
    assert 'hub_snapshot_slow_query{query="orders by status"} 1.0' in reply.text


def test_hub_status_says_slow_query_not_unreachable(orders_locked: Connection) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "hub", "status"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
        check=False,
    )
    said = " ".join((done.stdout + done.stderr).split())

    assert "query 'orders by status' ran past the" in said, said
    assert "unreachable" not in said, said
    assert "pg_ctlcluster" not in said, said
