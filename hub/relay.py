"""The outbox relay: publishes what the intake's fast path did not, until stopped."""

from __future__ import annotations

import logging
import threading

from hub.db import unit_of_work
from hub.outbox import ChainPublisher, publish_pending

log = logging.getLogger("hub.relay")


def relay_once(publisher: ChainPublisher, *, batch_size: int) -> int:
    with unit_of_work() as session:
        return publish_pending(session, publisher, limit=batch_size)


def run_relay(
    publisher: ChainPublisher,
    *,
    batch_size: int,
    interval: float,
    stop: threading.Event,
) -> None:
    """Publish batches back to back while there is a backlog; poll every ``interval`` otherwise."""
    while not stop.is_set():
        try:
            sent = relay_once(publisher, batch_size=batch_size)
        except Exception:
            # PostgreSQL or RabbitMQ away: keep the process up and try again shortly.
            log.exception("relay pass failed; retrying in %.1fs", interval)
            sent = 0
        if sent:
            log.info("relay published %d outbox rows", sent)
        if sent < batch_size:
            stop.wait(interval)
