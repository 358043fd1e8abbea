"""Taking a snapshot: the database's half, the broker's half, and (for ``hub status``) the
workers online."""

from __future__ import annotations

from datetime import UTC, datetime

from celery import Celery

from hub.observability.health import ServiceDown
from hub.observability.snapshot.broker import read_broker, read_workers
from hub.observability.snapshot.database import read_database
from hub.observability.snapshot.facts import Snapshot
from hub.settings import Settings


def take_snapshot(
    settings: Settings, *, workers: Celery | None = None, timeout: float = 3.0
) -> Snapshot:
    """Read everything; never raises for a service that is down or unwell.

    ``workers``: the Celery app whose workers to ask for (None: don't ask, as ``/metrics``).
    """
    database = read_database(settings, timeout=timeout)
    broker = read_broker(settings, timeout=timeout)
    seen: tuple[str, ...] | ServiceDown | None = None
    if workers is not None:
        # Asking workers needs the broker; don't wait on it twice when it is already known down.
        seen = (
            broker
            if isinstance(broker, ServiceDown)
            else read_workers(settings, workers, timeout=1.0)
        )
    return Snapshot(
        taken_at=datetime.now(UTC),
        queue_prefix=settings.queue_prefix,
        database=database,
        broker=broker,
        workers=seen,
    )
