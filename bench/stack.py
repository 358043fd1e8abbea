"""A whole hub (sandbox, workers, relay, API) as child processes, started like an operator would."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from hub.demo.processes import Child, StartupError, Supervisor, http_ok
from hub.demo.sandboxes import Sandboxes
from hub.settings import Settings


@dataclass
class Stack:
    settings: Settings
    log_dir: Path
    workers: int = 2
    concurrency: int = 2
    supervisor: Supervisor = field(init=False)

    def __post_init__(self) -> None:
        # The settings are already in os.environ (bench.env), which the children inherit.
        self.supervisor = Supervisor(env={}, log_dir=self.log_dir)

    @property
    def api_url(self) -> str:
        return f"http://{self.settings.api_host}:{self.settings.api_port}"

    @property
    def sandbox(self) -> Sandboxes:
        return Sandboxes.from_settings(self.settings)

    @property
    def worker_names(self) -> list[str]:
        # Node names are global to the broker (pidbox queues): prefix them with the stack's.
        return [f"{self.settings.queue_prefix}-worker{n}" for n in range(1, self.workers + 1)]

    def start(self) -> None:
        busy = [url for url in [*self.sandbox.urls.values(), self.api_url] if http_ok(url)()]
        if busy:
            raise StartupError(f"already in use (stop what runs there first): {', '.join(busy)}")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        for old in self.log_dir.glob("*.log"):
            old.unlink()
        s = self.supervisor
        sandbox = s.hub("sandbox", "sandbox")
        s.wait_until(sandbox, http_ok(f"{self.sandbox.urls['erp']}/_health"))
        started = [self.start_worker(name, wait=False) for name in self.worker_names]
        self.start_relay()
        self.start_api()
        for child in started:
            s.wait_for_log(child, "ready.", timeout=90)

    def start_worker(self, name: str, *, wait: bool = True) -> Child:
        child = self.supervisor.worker(name, concurrency=self.concurrency)
        if wait:
            self.supervisor.wait_for_log(child, "ready.", timeout=90)
        return child

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
