"""The hot path's prepared statements on a real PostgreSQL: prepared once on a connection, and
again on the connection that replaces one the server ended (a restart, a failover)."""

from __future__ import annotations

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.exc import OperationalError

from hub.db.engine import autocommit, get_engine
from hub.db.prepared import Prepared
from hub.settings import get_settings

ANSWER = Prepared("hub_test_answer", text("SELECT CAST(:value AS integer) + 1 AS answer"))


def prepared_on(connection: Connection) -> list[str]:
    found = connection.execute(text("SELECT name FROM pg_prepared_statements ORDER BY name"))
    return list(found.scalars())


def test_a_statement_is_prepared_once_on_a_connection() -> None:
    with autocommit(get_engine()).connect() as connection:
        assert ANSWER.execute(connection, {"value": 1}).scalar_one() == 2
        assert ANSWER.execute(connection, {"value": 41}).scalar_one() == 42
        assert prepared_on(connection).count("hub_test_answer") == 1


def test_the_connection_replacing_one_the_server_ended_prepares_again() -> None:
    engine = autocommit(get_engine())
    with engine.connect() as connection:
        assert ANSWER.execute(connection, {"value": 1}).scalar_one() == 2
        backend = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with get_engine().connect() as other:
            other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
        # The ended connection fails its statement once, as any statement would ...
        with pytest.raises(OperationalError):
            ANSWER.execute(connection, {"value": 2})
    # ... and its replacement has not prepared it: it does, and answers.
    with engine.connect() as connection:
        assert connection.execute(text("SELECT pg_backend_pid()")).scalar_one() != backend
        assert ANSWER.execute(connection, {"value": 2}).scalar_one() == 3
        assert "hub_test_answer" in prepared_on(connection)


def test_switched_off_the_statement_is_sent_as_text_and_nothing_is_prepared(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HUB_PREPARED_STATEMENTS", "false")
    get_settings.cache_clear()
    try:
        engine = autocommit(get_engine())
        with engine.connect() as connection:
            connection.execute(text("DEALLOCATE ALL"))  # whatever earlier tests left on it
            connection.connection.info.pop("hub_prepared_statements", None)
            assert ANSWER.execute(connection, {"value": 6}).scalar_one() == 7
            assert prepared_on(connection) == []
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
