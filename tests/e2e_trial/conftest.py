"""The hub in trial mode, as ``make demo`` runs it with no server around: SQLite and kombu's
filesystem:// broker in a temporary folder, sandbox, two worker processes, relay and API.

Nothing here touches the PostgreSQL / RabbitMQ stack of the other tests: the children get the
trial settings on top of the tests' environment, and this process reads the SQLite file.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from hub.db import migrate
from hub.db.engine import engine_for
from hub.db.models import Order
from hub.demo.processes import ROOT
from hub.demo.stack import HubStack
from hub.services import keys
from hub.settings import Settings
from hub.trial import mode as trial
from tests import ports
from tests.factories import order_payload

# HUB_TEST_TRIAL_PORT_BASE, or the trial's range of the suite's ports (tests/ports.py).
PORT_BASE = int(os.environ.get("HUB_TEST_TRIAL_PORT_BASE", ports.port("trial")))
# API, sandbox +1..+3, the demo's own +4..+7, Flower +8.
FLOWER_PORT = PORT_BASE + 8
FLOWER_AUTH = ("trial-operator", "trial-flower-password")
LOGS = ROOT / "var" / "test-logs" / f"trial-{PORT_BASE}"


def trial_settings(root: Path, *, port_base: int) -> Settings:
    return Settings(
        _env_file=None,  # only what is given here, and the environment
        trial=True,
        trial_dir=str(root),
        database_url=f"sqlite:///{root / trial.DATABASE_FILE}",
        broker_url="filesystem://localhost/",
        queue_prefix="hubtrial",
        api_port=port_base,
        erp_url=f"http://127.0.0.1:{port_base + 1}",
        warehouse_url=f"http://127.0.0.1:{port_base + 2}",
        accounting_url=f"http://127.0.0.1:{port_base + 3}",
    )


def child_environment(settings: Settings) -> dict[str, str]:
    return {
        **trial.trial_environment(settings),
        "HUB_QUEUE_PREFIX": settings.queue_prefix,
        "HUB_API_PORT": str(settings.api_port),
        "HUB_ERP_URL": settings.systems["erp"].url,
        "HUB_WAREHOUSE_URL": settings.systems["warehouse"].url,
        "HUB_ACCOUNTING_URL": settings.systems["accounting"].url,
        "HUB_FLOWER_PORT": str(FLOWER_PORT),
        "HUB_FLOWER_USER": FLOWER_AUTH[0],
        "HUB_FLOWER_PASSWORD": FLOWER_AUTH[1],
    }


def wait_for(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout}s waiting for {what}", pytrace=False)


@dataclass
class TrialStack(HubStack):
    headers: dict[str, str] = field(default_factory=dict)

    def session(self) -> Session:
        return sessionmaker(bind=engine_for(self.settings.database_url))()

    def post(self, payload: dict[str, object] | None = None) -> str:
        reply = requests.post(
            f"{self.api_url}/orders",
            json=payload or order_payload(),
            headers=self.headers,
            timeout=10,
        )
        assert reply.status_code == 202, reply.text
        order_id: str = reply.json()["order_id"]
        return order_id

    def statuses(self, order_ids: Iterable[str]) -> dict[str, str]:
        wanted = [uuid.UUID(i) for i in order_ids]
        with self.session() as session:
            rows = session.execute(select(Order.id, Order.status).where(Order.id.in_(wanted)))
            return {str(order_id): status for order_id, status in rows}

    def wait_status(self, order_ids: list[str], status: str, *, timeout: float) -> None:
        def reached() -> bool:
            found = self.statuses(order_ids)
            return len(found) == len(order_ids) and set(found.values()) == {status}

        wait_for(reached, timeout=timeout, what=f"{len(order_ids)} order(s) to be {status}")

    def hub(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A ``hub`` command as an operator types it, with the trial settings."""
        return subprocess.run(
            [sys.executable, "-m", "hub", *args],
            env={**os.environ, **self.env},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


@pytest.fixture(scope="package")
def trial_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrialStack]:
    settings = trial_settings(tmp_path_factory.mktemp("trial"), port_base=PORT_BASE)
    trial.prepare(settings)
    migrate.upgrade(settings.database_url)
    LOGS.mkdir(parents=True, exist_ok=True)
    for old in LOGS.glob("*.log"):
        old.unlink()
    env = child_environment(settings)
    # Two threads a worker: SQLite takes one writer at a time.
    stack = TrialStack(settings, LOGS, concurrency=2, env=env)
    with stack.session() as session, session.begin():
        token = keys.create_key(session, "e2e-trial").token
    stack.headers = {"Authorization": f"Bearer {token}"}
    try:
        if busy := stack.busy():
            pytest.fail(f"something else already answers on {', '.join(busy)}", pytrace=False)
        stack.start()
        yield stack
    finally:
        stack.supervisor.stop()


@pytest.fixture(autouse=True)
def _no_faults(request: pytest.FixtureRequest) -> Iterator[None]:
    if "trial_stack" not in request.fixturenames:
        yield
        return
    stack: TrialStack = request.getfixturevalue("trial_stack")
    stack.sandbox.clear_faults()
    yield
    stack.sandbox.clear_faults()
