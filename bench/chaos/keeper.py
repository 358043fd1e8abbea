"""Keeps the stack's processes running: whatever dies (killed, or gave up) is started again.

What an init system or an orchestrator does for the hub in production; the chaos run needs it
because the nemesis kills processes and a broker or database restart may make one exit.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from functools import partial

from bench.stack import Stack
from hub.demo.processes import Child


class Keeper:
    def __init__(self, stack: Stack, *, interval: float = 0.5) -> None:
        self.stack = stack
        self.interval = interval
        # Held while a child is killed or replaced, so the keeper and the nemesis never race.
        self.lock = threading.RLock()
        self.restarts: Counter[str] = Counter()
        self._recipes: dict[str, Callable[[], Child]] = {
            name: partial(stack.start_worker, name, wait=False) for name in stack.worker_names
        }
        self._recipes["relay"] = stack.start_relay
        self._recipes["api"] = partial(stack.start_api, wait=False)
        self._started_at: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="keeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def kinds(self) -> list[str]:
        return list(self._recipes)

    def child(self, name: str) -> Child | None:
        with self.lock:
            return next((c for c in self.stack.supervisor.children if c.name == name), None)

    def revive_all(self, *, min_gap: float = 2.0) -> None:
        """Start whatever is not running now; a process that keeps exiting (its broker or
        database still away) is tried again every ``min_gap`` seconds, not in a tight loop."""
        with self.lock:
            now = time.monotonic()
            for name, start in self._recipes.items():
                child = self.child(name)
                if child is not None and child.popen.poll() is None:
                    continue
                if now - self._started_at.get(name, 0.0) < min_gap:
                    continue
                if child is not None:
                    self.stack.forget(child)
                start()
                self._started_at[name] = now
                self.restarts[name] += 1

    def alive(self) -> bool:
        """Every process the keeper keeps is running."""
        with self.lock:
            return all(
                (child := self.child(name)) is not None and child.popen.poll() is None
                for name in self._recipes
            )

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.revive_all()
            except Exception:  # keep keeping; the next round tries again
                time.sleep(1)
