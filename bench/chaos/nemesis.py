"""The nemesis: at random moments, one of the faults the hub claims to survive.

Process kills are SIGKILL (no goodbye): a worker's whole process group (main and pool
children), one pool child, the relay, the API. A relay killed while it has a backlog may die
between publishing a chain and marking its outbox row sent, which is why a relay kill also
follows each broker restart, while the rows the intake could not publish are being caught up.
Service restarts (RabbitMQ, PostgreSQL) are few and capped: they disturb the whole machine.
A downstream flap breaks one sandbox system for a few seconds, in the background.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import psutil

from bench import records
from bench.chaos import services
from bench.chaos.keeper import Keeper
from bench.stack import Stack
from hub.demo.processes import Child

PROCESS_FAULTS = ("kill_worker", "kill_pool_child", "kill_relay", "kill_api")
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


@dataclass
class Nemesis:
    stack: Stack
    keeper: Keeper
    plan: NemesisPlan
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

    def kill_pool_child(self) -> None:
        name = self._rng.choice(self.stack.worker_names)
        with self.keeper.lock:
            child = self._running(name)
            if child is None:
                return
            try:
                pool = psutil.Process(child.popen.pid).children()
            except psutil.Error:
                return
            if not pool:
                return
            victim = self._rng.choice(pool)
            with contextlib.suppress(psutil.Error):
                victim.send_signal(signal.SIGKILL)  # the worker's main process replaces it
        self._note("kill_pool_child", f"{name}: pid {victim.pid}")

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
        took = services.restart_rabbitmq(down_for=down_for)
        self._note("restart_rabbitmq", f"down {down_for:.1f} s, answering again after {took:.1f} s")
        # The rows the intake could not publish meanwhile are the relay's now: kill it while
        # it catches up, between a publish and the commit that marks the row sent.
        time.sleep(self._rng.uniform(0.1, 1.0))
        self.kill_relay()

    def restart_postgres(self) -> None:
        self._left["restart_postgres"] -= 1
        took = services.restart_postgres()
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
                self.stack.sandbox.control(system).clear_faults()

        thread = threading.Thread(target=heal, name=f"flap-{system}", daemon=True)
        thread.start()
        self._flaps.append(thread)
