"""The nemesis: at random moments, one of the faults the hub claims to survive.

Process kills are SIGKILL (no goodbye): a worker's whole process group (its threads with the
calls they have in flight, and the slots of limited systems they hold), the relay, the API. A
worker is also stopped as a deploy stops it (SIGTERM: Celery's warm shutdown lets the steps in
flight finish; SIGKILL if it has not exited 30 s later, as an init system's stop timeout).
A relay killed while it has a backlog may die between publishing a chain and marking its
outbox row sent, which is why a relay kill also follows each broker restart, while the rows
the intake could not publish are being caught up.
Service restarts (RabbitMQ, PostgreSQL) are few and capped; they restart the run's own node
and cluster (``bench.chaos.services``), never the machine's.
A downstream flap breaks one sandbox system for a few seconds, in the background.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench import records
from bench.chaos.keeper import Keeper
from bench.chaos.services import OwnServices
from bench.stack import Stack
from hub.demo.processes import Child

PROCESS_FAULTS = ("kill_worker", "stop_worker", "kill_relay", "kill_api")
# An init system's stop timeout: a worker still running this long after SIGTERM is killed.
STOP_TIMEOUT = 30.0
FLAPS = (
    ("down", {"down": True}),
    ("errors", {"error_rate": 0.5, "status": 503}),
    ("slow", {"latency_ms": 1500}),
    ("rate_limited", {"error_rate": 0.7, "status": 429, "retry_after": 1}),
)


@dataclass(frozen=True)
class Fault:
    at: float  # seconds since the nemesis started
    kind: str
    detail: str


@dataclass
class NemesisPlan:
    mean_interval: float  # seconds between two faults, on average (exponential)
    rabbitmq_restarts: int
    postgres_restarts: int
    flaps: bool = True
    seed: int | None = None
    # Faults each system has when not flapping (the ERP's latency, say): a flap's end
    # restores them.
    baseline: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Nemesis:
    stack: Stack
    keeper: Keeper
    plan: NemesisPlan
    services: OwnServices
    faults: list[Fault] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.plan.seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="nemesis", daemon=True)
        self._started = time.monotonic()
        self._flaps: list[threading.Thread] = []
        self._left = Counter(
            restart_rabbitmq=self.plan.rabbitmq_restarts,
            restart_postgres=self.plan.postgres_restarts,
        )

    def start(self) -> None:
        self._started = time.monotonic()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(300)
        for flap in self._flaps:
            flap.join(30)

    def counts(self) -> Counter[str]:
        return Counter(f.kind for f in self.faults)

    # ---- the schedule ----------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.wait(self._rng.expovariate(1 / self.plan.mean_interval)):
            kind = self._pick()
            try:
                getattr(self, kind)()
            except Exception as exc:  # a fault that could not be injected is reported, not fatal
                self.errors.append(f"{kind}: {exc}")

    def _pick(self) -> str:
        kinds = list(PROCESS_FAULTS) * 2  # processes die more often than services restart
        if self.plan.flaps:
            kinds += ["flap"] * 2
        kinds += [kind for kind, left in self._left.items() if left > 0]
        return self._rng.choice(kinds)

    def _note(self, kind: str, detail: str) -> None:
        self.faults.append(Fault(round(time.monotonic() - self._started, 1), kind, detail))

    # ---- process kills -----------------------------------------------------------------------

    def _running(self, name: str) -> Child | None:
        child = self.keeper.child(name)
        return child if child is not None and child.popen.poll() is None else None

    def kill_worker(self) -> None:
        name = self._rng.choice(self.stack.worker_names)
        with self.keeper.lock:
            child = self._running(name)
            if child is None:
                return
            os.killpg(child.popen.pid, signal.SIGKILL)  # the main process and its pool
            child.popen.wait(10)
        self._note("kill_worker", f"{name}: main and pool children")

    def stop_worker(self) -> None:
        name = self._rng.choice(self.stack.worker_names)
        with self.keeper.lock:
            child = self._running(name)
            if child is None:
                return
            os.killpg(child.popen.pid, signal.SIGTERM)  # the keeper starts it again once gone
        self._note(
            "stop_worker", f"{name}: SIGTERM with {_running_steps()} steps running (all workers)"
        )

        def stop_timeout() -> None:
            try:
                child.popen.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.popen.pid, signal.SIGKILL)
                self._note("stop_worker", f"{name}: still running {STOP_TIMEOUT:.0f} s on, SIGKILL")

        waiter = threading.Thread(target=stop_timeout, name=f"stop-{name}", daemon=True)
        waiter.start()
        self._flaps.append(waiter)  # joined at the end like a flap's healer

    def kill_relay(self) -> None:
        with self.keeper.lock:
            child = self._running("relay")
            if child is None:
                return
            try:
                unsent = records.unsent_outbox()
            except Exception:
                unsent = -1  # PostgreSQL away just now
            os.killpg(child.popen.pid, signal.SIGKILL)
            child.popen.wait(10)
        detail = f"{unsent} outbox rows unsent" if unsent >= 0 else "database away"
        self._note("kill_relay", detail)

    def kill_api(self) -> None:
        with self.keeper.lock:
            child = self._running("api")
            if child is None:
                return
            os.killpg(child.popen.pid, signal.SIGKILL)
            child.popen.wait(10)
        self._note("kill_api", "senders retry the same orders")

    # ---- services ----------------------------------------------------------------------------

    def restart_rabbitmq(self) -> None:
        self._left["restart_rabbitmq"] -= 1
        down_for = self._rng.uniform(1, 5)
        took = self.services.restart_rabbitmq(down_for=down_for)
        self._note("restart_rabbitmq", f"down {down_for:.1f} s, answering again after {took:.1f} s")
        # The rows the intake could not publish meanwhile are the relay's now: kill it while
        # it catches up, between a publish and the commit that marks the row sent.
        time.sleep(self._rng.uniform(0.1, 1.0))
        self.kill_relay()

    def restart_postgres(self) -> None:
        self._left["restart_postgres"] -= 1
        took = self.services.restart_postgres()
        self._note("restart_postgres", f"answering again after {took:.1f} s")

    # ---- downstream ----------------------------------------------------------------------------

    def flap(self) -> None:
        system = self._rng.choice(list(self.stack.sandbox.urls))
        how, faults = self._rng.choice(FLAPS)
        seconds = self._rng.uniform(2, 8)
        self.stack.sandbox.set_faults(system, **faults)
        self._note("flap", f"{system} {how} for {seconds:.1f} s")

        def heal() -> None:
            self._stop.wait(seconds)
            with contextlib.suppress(Exception):
                control = self.stack.sandbox.control(system)
                if system in self.plan.baseline:
                    control.set_faults(**self.plan.baseline[system])
                else:
                    control.clear_faults()

        thread = threading.Thread(target=heal, name=f"flap-{system}", daemon=True)
        thread.start()
        self._flaps.append(thread)


def _running_steps() -> int:
    """Steps running anywhere now (PostgreSQL away: -1)."""
    try:
        return records.steps_running()
    except Exception:
        return -1
