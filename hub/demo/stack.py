"""The one stack starter: a whole hub (sandbox, workers, relay, API) as child processes.

``hub demo``, ``make bench``/``make chaos`` and the end-to-end tests (both tiers) start the hub
with this, as an operator would. The sandbox serves the systems of the settings' pipeline, and
the stack waits until every one of them answers its port's health check (``check()`` of the
adapter ``hub.bootstrap`` builds for it: an HTTP system's ``/_health``, another protocol's own
probe), not only the ERP's, before it starts a worker.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hub import bootstrap
from hub.core.errors import DownstreamError
from hub.core.registry import REGISTRY
from hub.demo.processes import Child, StartupError, Supervisor, http_ok
from hub.demo.sandboxes import Sandboxes
from hub.settings import Settings


def answers(port: Any) -> Callable[[], bool]:
    """Whether a system's adapter says the system is up (its ``check()`` raised nothing)."""

    def check() -> bool:
        try:
            port.check()
        except DownstreamError:
            return False
        return True

    return check


@dataclass
class HubStack:
    """``settings`` say where everything listens (the children get them from the environment
    and ``env``); ``log_dir`` holds one log per child, emptied on start."""

    settings: Settings
    log_dir: Path
    workers: int = 2
    # None: `hub worker`'s own defaults (the threads pool, 32 threads).
    concurrency: int | None = None
    pool: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    supervisor: Supervisor = field(init=False)
    # Per worker: where its log stood when it was last started.
    _ready_from: dict[str, int] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.supervisor = Supervisor(env=dict(self.env), log_dir=self.log_dir)

    @property
    def api_url(self) -> str:
        return f"http://{self.settings.api_host}:{self.settings.api_port}"

    @property
    def sandbox(self) -> Sandboxes:
        return Sandboxes.from_settings(self.settings)

    @property
    def systems(self) -> tuple[str, ...]:
        """The systems the pipeline calls (an optional step that is off calls none)."""
        return REGISTRY.systems_of(self.settings.pipeline.steps)

    @property
    def worker_names(self) -> list[str]:
        return [f"worker{n}" for n in range(1, self.workers + 1)]

    def busy(self) -> list[str]:
        """The stack's addresses where something already answers."""
        urls = [self.api_url, *(self.sandbox.control(s).base_url for s in self.systems)]
        return [url for url in urls if http_ok(url)()]

    def start(self) -> None:
        if busy := self.busy():
            raise StartupError(f"already in use (stop what runs there first): {', '.join(busy)}")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for old in self.log_dir.glob("*.log"):
            old.unlink()
        self.start_sandbox()
        started = [self.start_worker(name, wait=False) for name in self.worker_names]
        self.start_relay()
        self.start_api()
        for child in started:
            self.wait_ready(child)

    def start_sandbox(self, *, timeout: float = 30) -> Child:
        """``python -m sandbox``, ready once every system of the pipeline answers."""
        child = self.supervisor.sandbox()
        for system in self.systems:
            port = bootstrap.adapter(self.settings, system)
            self.supervisor.wait_until(child, answers(port), timeout=timeout)
        return child

    def start_worker(self, name: str, *, wait: bool = True) -> Child:
        # The node name carries the queue prefix: node names are global to the broker (its
        # exclusive remote-control queues), and stacks of other prefixes may share it.
        node = f"{self.settings.queue_prefix}-{name}"
        log = self.log_dir / f"{name}.log"
        # The log is appended to: "ready." must be this start's, not an earlier one's.
        offset = log.stat().st_size if log.exists() else 0
        child = self.spawn_worker(name, node=node)
        self._ready_from[child.name] = offset
        if wait:
            self.wait_ready(child)
        return child

    def spawn_worker(self, name: str, *, node: str) -> Child:
        """``hub worker`` as this stack runs it (a cluster's stack gives each its broker URL)."""
        return self.supervisor.worker(name, node=node, concurrency=self.concurrency, pool=self.pool)

    def wait_ready(self, child: Child, *, timeout: float = 90) -> None:
        """Until the worker says "ready." in its log since it was started."""
        offset = self._ready_from.get(child.name, 0)
        self.supervisor.wait_until(
            child, lambda: b"ready." in child.log_path.read_bytes()[offset:], timeout=timeout
        )

    def start_relay(self) -> Child:
        return self.supervisor.hub("relay", "relay")

    def start_api(self, *, wait: bool = True) -> Child:
        api = self.supervisor.hub("api", "api")
        if wait:
            self.supervisor.wait_until(api, http_ok(f"{self.api_url}/healthz"), timeout=60)
        return api

    def child(self, name: str) -> Child:
        return next(c for c in self.supervisor.children if c.name == name)

    def forget(self, child: Child) -> None:
        """Drop a child that died (or was killed) from the supervisor's list."""
        if child in self.supervisor.children:
            self.supervisor.children.remove(child)

    def stop(self) -> None:
        self.supervisor.stop()

    def stop_child(self, child: Child, *, timeout: float = 15) -> None:
        """SIGTERM one child's process group (SIGKILL if it lingers) and forget it."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.popen.pid, signal.SIGTERM)
        try:
            child.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.popen.pid, signal.SIGKILL)
            child.popen.wait(5)
        self.forget(child)

    def restart_workers(self, **env: str) -> None:
        """Stop every worker and start it again with these settings added (for one figure)."""
        for name in self.worker_names:
            self.stop_child(self.child(name))
        self.supervisor.env = {**self.supervisor.env, **env}
        for name in self.worker_names:
            self.start_worker(name)

    @contextlib.contextmanager
    def other_workers(
        self,
        *,
        workers: int,
        pool: str | None = None,
        concurrency: int | None = None,
        env: dict[str, str] | None = None,
    ) -> Iterator[list[Child]]:
        """For one figure: ``workers`` workers of this pool (None: `hub worker`'s defaults)
        with these settings added instead of the stack's own, which come back afterwards."""
        for name in self.worker_names:
            self.stop_child(self.child(name))
        saved = (self.workers, self.pool, self.concurrency, self.supervisor.env)
        self.workers, self.pool, self.concurrency = workers, pool, concurrency
        self.supervisor.env = {**self.supervisor.env, **(env or {})}
        try:
            started = [self.start_worker(name, wait=False) for name in self.worker_names]
            for child in started:
                self.wait_ready(child)
            yield started
        finally:
            for name in self.worker_names:
                with contextlib.suppress(StopIteration):
                    self.stop_child(self.child(name))
            self.workers, self.pool, self.concurrency, self.supervisor.env = saved
            for name in self.worker_names:
                self.start_worker(name)
