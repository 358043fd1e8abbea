"""Start and stop the hub's processes (sandbox, workers, relay, API) as children of one parent.

Used by ``hub demo`` and the end-to-end tests, so both run exactly what an operator runs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]


class StartupError(RuntimeError):
    """A child process did not come up; the message holds the tail of its log."""


@dataclass
class Child:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class Supervisor:
    env: Mapping[str, str]
    log_dir: Path
    children: list[Child] = field(default_factory=list)

    def start(self, name: str, argv: list[str]) -> Child:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        log = log_path.open("ab")
        popen = subprocess.Popen(
            argv,
            cwd=ROOT,
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        child = Child(name, popen, log_path)
        self.children.append(child)
        return child

    def hub(self, name: str, *args: str) -> Child:
        return self.start(name, [sys.executable, "-m", "hub", *args])

    def sandbox(self) -> Child:
        """``python -m sandbox`` from the checkout (the sandboxes are not part of the hub)."""
        return self.start("sandbox", [sys.executable, "-m", "sandbox"])

    def worker(
        self,
        name: str,
        *,
        node: str | None = None,
        concurrency: int | None = None,
        pool: str | None = None,
    ) -> Child:
        """``hub worker`` (node name ``node``, or ``name``); its own defaults (the threads
        pool) unless told otherwise."""
        options = [*(["--pool", pool] if pool else []), "--name", node or name]
        if concurrency is not None:
            options += ["--concurrency", str(concurrency)]
        return self.hub(name, "worker", *options)

    def wait_until(self, child: Child, ready: Callable[[], bool], *, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if child.popen.poll() is not None:
                raise StartupError(
                    f"{child.name} exited with {child.popen.returncode}:\n{child.log_tail()}"
                )
            if ready():
                return
            time.sleep(0.1)
        raise StartupError(f"{child.name} not ready after {timeout}s:\n{child.log_tail()}")

    def wait_for_log(self, child: Child, text: str, *, timeout: float = 30) -> None:
        self.wait_until(child, lambda: text in child.log_tail(200), timeout=timeout)

    def stop(self, *, timeout: float = 15) -> None:
        """SIGTERM every child (its whole process group), then SIGKILL whatever lingers."""
        for child in reversed(self.children):
            if child.popen.poll() is None:
                _signal_group(child.popen, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in self.children:
            remaining = max(0.1, deadline - time.monotonic())
            try:
                child.popen.wait(remaining)
            except subprocess.TimeoutExpired:
                _signal_group(child.popen, signal.SIGKILL)
                child.popen.wait(5)
        self.children.clear()


def _signal_group(popen: subprocess.Popen[bytes], signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(popen.pid, signum)


def http_ok(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return requests.get(url, timeout=1).status_code < 500
        except requests.RequestException:
            return False

    return check
