"""The unit tier's guard (tests/unit/conftest.py): a unit test that reaches a service fails
saying so, whether it goes through Python's sockets (amqp, requests) or libpq (psycopg2)."""

from __future__ import annotations

import socket
import tempfile
from pathlib import Path

import psycopg2
import pytest
import requests

from tests.unit.conftest import NetworkInUnitTest


def test_a_tcp_connection_is_refused_naming_the_test_and_the_address() -> None:
    with pytest.raises(NetworkInUnitTest, match=r"test_a_tcp_connection.*'127\.0\.0\.1', 5672"):
        socket.create_connection(("127.0.0.1", 5672), timeout=1)
    with pytest.raises(NetworkInUnitTest, match="the unit tier reaches no service"):
        requests.get("http://127.0.0.1:1/", timeout=1)


def test_postgresql_through_libpq_is_refused() -> None:
    with pytest.raises(NetworkInUnitTest, match="connects to PostgreSQL"):
        psycopg2.connect(host="127.0.0.1", port=5432, dbname="hub_test", connect_timeout=1)


def test_local_sockets_stay_allowed() -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "s")
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(path)
        server.listen(1)
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            client.connect(path)
        finally:
            client.close()
            server.close()
