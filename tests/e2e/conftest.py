from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hub.demo.processes import Supervisor, http_ok
from hub.demo.sandboxes import Sandboxes
from hub.settings import get_settings
from tests import support

# One directory per queue prefix, so two runs on one machine keep their logs apart.
LOGS = Path(__file__).resolve().parents[2] / "var" / "test-logs" / get_settings().queue_prefix


@pytest.fixture(scope="package", autouse=True)
def _real_services() -> None:
    support.require_services()
    support.fresh_schema()
    support.truncate_tables()
    support.declare_and_purge_queues()


class Stack:
    """The hub as an operator runs it: sandbox, two worker processes, relay and API."""

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor
        settings = get_settings()
        self.api_url = f"http://{settings.api_host}:{settings.api_port}"
        self.sandbox = Sandboxes.from_settings(settings)
        self._headers: dict[str, str] = {}

    @property
    def headers(self) -> dict[str, str]:
        """Intake credentials; a new key when a test has emptied the tables since the last one."""
        if not self._headers or not support.api_key_is_live(self._headers):
            self._headers = support.api_key_headers("e2e")
        return self._headers

    def start(self) -> None:
        s = self.supervisor
        for url in [*self.sandbox.urls.values(), self.api_url]:
            if http_ok(url)():
                pytest.fail(
                    f"something else already answers on {url}; stop it first", pytrace=False
                )
        sandbox = s.hub("sandbox", "sandbox")
        s.wait_until(sandbox, http_ok(f"{self.sandbox.urls['erp']}/_health"))
        for name in ("worker1", "worker2"):
            self.start_worker(name)
        s.hub("relay", "relay")
        api = s.hub("api", "api")
        s.wait_until(api, http_ok(f"{self.api_url}/healthz"))

    def start_worker(self, name: str) -> None:
        # The node name carries the queue prefix: test runs sharing a broker would otherwise
        # fight over the exclusive remote-control queue of "worker1@<host>".
        node = f"{get_settings().queue_prefix}-{name}"
        worker = self.supervisor.hub(name, "worker", "--concurrency", "2", "--name", node)
        self.supervisor.wait_for_log(worker, "ready.", timeout=60)

    def child(self, name: str) -> object:
        return next(c for c in self.supervisor.children if c.name == name)


@pytest.fixture(scope="package")
def stack(_real_services: None) -> Iterator[Stack]:
    LOGS.mkdir(parents=True, exist_ok=True)
    for old in LOGS.glob("*.log"):
        old.unlink()
    running = Stack(Supervisor(env={}, log_dir=LOGS))
    try:
        running.start()
        yield running
    finally:
        running.supervisor.stop()


@pytest.fixture(autouse=True)
def _no_faults(stack: Stack) -> Iterator[None]:
    stack.sandbox.clear_faults()
    support.reset_breakers()  # a test that tripped one must not slow the next
    yield
    stack.sandbox.clear_faults()
