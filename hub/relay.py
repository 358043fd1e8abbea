"""The outbox relay: publishes what the intake's fast path did not, until stopped."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from hub.core.ports import ChainPublisher
from hub.db.engine import unit_of_work
from hub.outbox import publish_pending

log = logging.getLogger("hub.relay")


def publish_row_now(publisher: ChainPublisher, outbox_id: int) -> bool:
    """Publish one outbox row at once (intake's fast path, a replay); True if it went out.

    On any failure the row stays unsent and the relay publishes it later.
    """
    try:
        with unit_of_work() as session:
            return publish_pending(session, publisher, limit=1, ids=[outbox_id]) == 1
    except Exception:
        log.warning(
            "publishing outbox row %s failed; the relay will retry", outbox_id, exc_info=True
        )
        return False


def relay_once(publisher: ChainPublisher, *, batch_size: int) -> int:
    with unit_of_work() as session:
        return publish_pending(session, publisher, limit=batch_size)


def run_relay(
    publisher: ChainPublisher,
    *,
    batch_size: int,
    interval: float,
    stop: threading.Event,
    drain_failures: Callable[[], int] = lambda: 0,
) -> None:
    """Publish batches back to back while there is a backlog; poll every ``interval`` otherwise.

    Each pass also takes what landed in the failure queue into failure records.
    """
    while not stop.is_set():
        sent = 0
        try:
            sent = relay_once(publisher, batch_size=batch_size)
            drained = drain_failures()
        except Exception:
            # PostgreSQL or RabbitMQ away: keep the process up and try again shortly.
            log.exception("relay pass failed; retrying in %.1fs", interval)
            drained = 0
        if sent or drained:
            log.info("relay published %d outbox rows, recorded %d dead letters", sent, drained)
        if sent < batch_size:
            stop.wait(interval)
