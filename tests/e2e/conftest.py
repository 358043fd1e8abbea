from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hub.demo.stack import HubStack
from hub.settings import get_settings
from tests import support

# One directory per queue prefix, so two runs on one machine keep their logs apart.
LOGS = Path(__file__).resolve().parents[2] / "var" / "test-logs" / get_settings().queue_prefix
WORKERS = ("worker1", "worker2")


@pytest.fixture(scope="package", autouse=True)
def _real_services() -> None:
    support.require_services()
    support.fresh_schema()
    support.truncate_tables()
    support.declare_and_purge_queues()


@dataclass
class Stack(HubStack):
    """The hub as an operator runs it: sandbox, two worker processes, relay and API."""

    _headers: dict[str, str] = field(default_factory=dict, init=False)

    @property
    def headers(self) -> dict[str, str]:
        """Intake credentials; a new key when a test has emptied the tables since the last one."""
        if not self._headers or not support.api_key_is_live(self._headers):
            self._headers = support.api_key_headers("e2e")
        return self._headers

    def start(self) -> None:
        if busy := self.busy():
            pytest.fail(
                f"something else already answers on {', '.join(busy)}; stop it first",
                pytrace=False,
            )
        super().start()

    def stop_worker(self, name: str) -> None:
        """SIGTERM one worker (its warm shutdown), SIGKILL if it lingers, and forget it."""
        self.stop_child(self.child(name), timeout=30)

    @contextlib.contextmanager
    def workers_with(self, *, names: tuple[str, ...] = WORKERS, **env: str) -> Iterator[None]:
        """Both workers stopped, then ``names`` started with these settings added (the others
        stay stopped); the usual two again afterwards, whatever the test did to them."""
        for name in WORKERS:
            if any(c.name == name and c.popen.poll() is None for c in self.supervisor.children):
                self.stop_worker(name)
            else:  # a test killed it
                self.supervisor.children[:] = [
                    c for c in self.supervisor.children if c.name != name
                ]
        saved = self.supervisor.env
        self.supervisor.env = {**saved, **env}
        try:
            for name in names:
                self.start_worker(name)
            yield
        finally:
            for name in WORKERS:
                if any(c.name == name for c in self.supervisor.children):
                    self.stop_worker(name)
            self.supervisor.env = saved
            for name in WORKERS:
                self.start_worker(name)


@pytest.fixture(scope="package")
def stack(_real_services: None) -> Iterator[Stack]:
    LOGS.mkdir(parents=True, exist_ok=True)
    for old in LOGS.glob("*.log"):
        old.unlink()
    running = Stack(get_settings(), LOGS)
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
