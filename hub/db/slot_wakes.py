"""Wake a step waiting for a system's slot the moment a call anywhere gives one back.

A step that finds no free slot would be deferred in the broker, which counts in whole seconds
(kombu drops a sub-second countdown): a slot freed after a 250 ms call would then be taken
again about once a second. Instead it first waits in its worker thread, briefly and bounded
(``HUB_THROTTLE__SLOT_WAIT``), and asks again when woken:

- ``hub.db.limits.release`` sends ``NOTIFY hub_slot_freed, '<system>'`` with the release;
  PostgreSQL delivers it at commit to every worker's listening connection, on every host.
- One listening connection per process (a daemon thread, started on the first wait and again
  after a fork) wakes the eldest waiter of that system in this process that is not awake yet.
  The shared queue (``system_waiters``) still decides who takes the slot, so a waiter that
  loses to an elder one of another worker waits again.
- A waiter asks again at least every ``RECHECK`` seconds whatever it hears: a lease lapsed
  after a worker was killed sends no notice, nor does a listener that lost PostgreSQL.
- At most ``cap`` threads of a process wait for one system (its max in flight): the others are
  deferred at once, so the threads of a worker are never all parked on one slow system.

Why not a broker queue with per-message TTLs in milliseconds: a deferral of 50 ms through a
dead-letter exchange still comes back whether a slot was freed or not (a busy loop through
RabbitMQ), while the notice comes exactly when one is. Why not short polling: every waiter of
every worker would take the system's row lock many times a second.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine

from hub.db.limits import SLOT_FREED

log = logging.getLogger("hub.limits")

# Longest a waiter sleeps without asking again (a notice may never come).
RECHECK = 0.5
# How long the listener waits before connecting again after losing PostgreSQL.
RECONNECT = 1.0


class Waiter:
    """One thread's place among this process's waiters for a system."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def sleep(self, seconds: float) -> bool:
        """Sleep until woken or ``seconds`` passed; whether a notice woke it."""
        return self._event.wait(seconds)

    def asked(self) -> None:
        """Its question was answered "wait": the next notice is for it again."""
        self._event.clear()

    @property
    def awake(self) -> bool:
        return self._event.is_set()

    def wake(self) -> None:
        self._event.set()


class SlotWakes:
    """This process's listener for given-back slots and its waiters, eldest first."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()
        self._waiters: dict[str, list[Waiter]] = {}
        self._pid: int | None = None
        self._listening = threading.Event()

    @property
    def listening(self) -> bool:
        """The listener holds a connection with ``LISTEN`` in force."""
        return self._listening.is_set()

    @contextmanager
    def waiting(self, system: str, *, cap: int) -> Iterator[Waiter | None]:
        """A place among ``system``'s waiters (None: ``cap`` threads already wait)."""
        self._ensure_listener()
        with self._lock:
            queue = self._waiters.setdefault(system, [])
            if len(queue) >= cap:
                waiter = None
            else:
                waiter = Waiter()
                queue.append(waiter)
        try:
            yield waiter
        finally:
            if waiter is not None:
                with self._lock:
                    queue.remove(waiter)

    def freed(self, system: str) -> None:
        """A slot of ``system`` was given back: wake the eldest waiter not awake yet."""
        with self._lock:
            for waiter in self._waiters.get(system, ()):
                if not waiter.awake:
                    waiter.wake()
                    return

    def _ensure_listener(self) -> None:
        # After a fork (prefork pool) the parent's thread does not exist in the child.
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._listening.clear()
        threading.Thread(target=self._listen, name="hub-slot-wakes", daemon=True).start()

    def _listen(self) -> None:
        pid = os.getpid()
        while self._pid == pid:
            connection: Any = None
            try:
                connection = self._connect()
                self._listening.set()
                self._relay(connection)
            except Exception as exc:  # PostgreSQL away: waiters fall back on RECHECK
                log.warning("slot wake-ups lost their connection: %s", exc)
            finally:
                self._listening.clear()
                if connection is not None:
                    with contextlib.suppress(Exception):  # already gone
                        connection.close()
            time.sleep(RECONNECT)

    def _connect(self) -> Any:
        # A connection of its own, out of the engine's pool: it stays in LISTEN for good.
        proxy = self._engine.raw_connection()
        proxy.detach()
        connection = proxy.dbapi_connection
        assert connection is not None
        connection.autocommit = True
        cursor = connection.cursor()
        cursor.execute(f"LISTEN {SLOT_FREED}")
        cursor.close()
        return connection

    def _relay(self, connection: Any) -> None:
        while True:
            # The socket turns readable on a notice and on the server going away (then
            # poll raises), so a lost PostgreSQL is noticed at once.
            select.select([connection], [], [], 5.0)
            connection.poll()
            while connection.notifies:
                self.freed(connection.notifies.pop(0).payload)
