"""A real Tryton for these tests: a database copied from the cached template, its own server.

The first run builds the template (minutes: trytond-admin and the master data); later runs copy
it in seconds. The server listens on HUB_TEST_PORT_BASE + 900 (tests/ports.py).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from adapters.tryton.rpc import TrytonConnection, TrytonRpc
from adapters.tryton.workflow import TrytonWorkflow
from sandbox.tryton import control
from sandbox.tryton.server import HUB_PASSWORD, HUB_USER, TrytonSandbox, TrytonSetupError
from tests import ports


@dataclass(frozen=True)
class LiveTryton:
    url: str
    database: str
    process: subprocess.Popen[bytes]

    def rpc(self) -> TrytonRpc:
        return TrytonRpc(
            TrytonConnection(
                url=self.url, database=self.database, user=HUB_USER, password=HUB_PASSWORD
            )
        )

    def workflow(self) -> TrytonWorkflow:
        return TrytonWorkflow(self.rpc())

    def admin(self) -> TrytonRpc:
        return control.admin_rpc(self.url, self.database)


@pytest.fixture(scope="session")
def tryton() -> Iterator[LiveTryton]:
    sandbox = TrytonSandbox()
    database = "hub_tryton_" + os.environ.get("HUB_TEST_QUEUE_PREFIX", "hubtest")
    port = ports.port("tryton")
    try:
        sandbox.create_database(database)
        process = sandbox.start(port=port, databases=[database])
    except TrytonSetupError as exc:
        pytest.fail(f"these tests need a local Tryton (make tryton):\n{exc}", pytrace=False)
    try:
        yield LiveTryton(url=f"http://127.0.0.1:{port}", database=database, process=process)
    finally:
        process.terminate()
        process.wait(timeout=30)
        sandbox.drop_database(database)
