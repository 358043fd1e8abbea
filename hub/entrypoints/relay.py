"""The outbox relay: publishes what the intake's fast path did not, until stopped.

Beside publishing it carries the hub's periodic duties (``Chore``): the sweeper that heals
stalled chains, and folding the audit trail into counters.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from hub.core.ports import ChainPublisher
from hub.services.outbox import relay_once

log = logging.getLogger("hub.relay")


@dataclass
class Chore:
    """A duty run every ``every`` seconds between relay passes; ``run`` returns what it did
    (0 for nothing), for the log."""

    name: str
    every: float
    run: Callable[[], int]
    # Due at once on start: a relay restarted after an outage sweeps straight away.
    _next: float = field(default=0.0, repr=False)

    def run_if_due(self, now: float) -> None:
        if now < self._next:
            return
        self._next = now + self.every
        try:
            done = self.run()
        except Exception:
            log.exception("relay chore %s failed; next try in %.0fs", self.name, self.every)
            return
        if done:
            log.info("relay chore %s: %d", self.name, done)


def run_relay(
    publisher: ChainPublisher,
    *,
    batch_size: int,
    interval: float,
    stop: threading.Event,
    grace: float = 0.0,
    drain_failures: Callable[[], int] = lambda: 0,
    chores: Sequence[Chore] = (),
) -> None:
    """Publish batches back to back while there is a backlog; poll every ``interval`` otherwise.

    Each pass also takes what landed in the failure queue into failure records, and runs the
    chores that are due.
    """
    while not stop.is_set():
        sent = 0
        try:
            sent = relay_once(publisher, batch_size=batch_size, grace=grace)
            drained = drain_failures()
        except Exception:
            # PostgreSQL or RabbitMQ away: keep the process up and try again shortly.
            log.exception("relay pass failed; retrying in %.1fs", interval)
            drained = 0
        if sent or drained:
            log.info("relay published %d outbox rows, recorded %d dead letters", sent, drained)
        for chore in chores:
            chore.run_if_due(time.monotonic())
        if sent < batch_size:
            stop.wait(interval)
