"""The outbox relay: publishes what the intake's fast path did not, until stopped."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from hub.core.ports import ChainPublisher
from hub.services.outbox import relay_once

log = logging.getLogger("hub.relay")


def run_relay(
    publisher: ChainPublisher,
    *,
    batch_size: int,
    interval: float,
    stop: threading.Event,
    grace: float = 0.0,
    drain_failures: Callable[[], int] = lambda: 0,
) -> None:
    """Publish batches back to back while there is a backlog; poll every ``interval`` otherwise.

    Each pass also takes what landed in the failure queue into failure records.
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
        if sent < batch_size:
            stop.wait(interval)
