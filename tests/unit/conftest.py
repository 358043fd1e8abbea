"""The unit tier reaches no service: a test that opens a network connection fails saying so.

Unit tests run on fakes of our own ports; one that reaches PostgreSQL, RabbitMQ or an HTTP server
belongs in tests/integration. Local (AF_UNIX) sockets stay allowed: they are how a process talks
to itself or its children, not a service. PostgreSQL is reached through libpq, which opens its
sockets in C: ``psycopg2.connect`` (what SQLAlchemy calls) is refused too.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import psycopg2
import pytest


class NetworkInUnitTest(AssertionError):
    pass


@pytest.fixture(autouse=True)
def _no_network(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    test = request.node.nodeid

    def refuse(self: socket.socket, address: Any, *_: Any) -> Any:
        if self.family == socket.AF_UNIX:
            return original_connect(self, address)
        raise NetworkInUnitTest(
            f"{test} connects to {address!r}: the unit tier reaches no service; move the test to "
            "tests/integration or give it a fake of the hub's own port"
        )

    def refuse_ex(self: socket.socket, address: Any) -> int:
        if self.family == socket.AF_UNIX:
            return int(original_connect_ex(self, address))
        refuse(self, address)
        return 1  # not reached

    def refuse_postgres(dsn: Any = None, *_: Any, **given: Any) -> Any:
        where = dsn or {k: v for k, v in given.items() if k in ("host", "port", "dbname")}
        raise NetworkInUnitTest(
            f"{test} connects to PostgreSQL ({where}): the unit tier reaches no service; move "
            "the test to tests/integration or give it a fake of the hub's own port"
        )

    original_connect, original_connect_ex = socket.socket.connect, socket.socket.connect_ex
    monkeypatch.setattr(psycopg2, "connect", refuse_postgres)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse_ex)
    yield
