"""The relay's periodic duties, built from the settings: what ``hub relay`` runs between passes."""

from __future__ import annotations

from kombu.connection import Connection

from hub.broker.depths import QueueDepths
from hub.broker.topology import Topology
from hub.entrypoints.relay import Chore
from hub.services import audit_rollup
from hub.services.sweeper import sweep_once
from hub.settings import Settings


def sweep_chore(settings: Settings, topology: Topology, connection: Connection) -> Chore:
    def run() -> int:
        # A queue deleted by hand comes back before anything is re-driven into it.
        topology.declare(connection)
        depths = QueueDepths(connection)
        try:
            swept = sweep_once(
                after=settings.sweep_after,
                tries=settings.sweep_tries,
                limit=settings.relay_batch_size,
                waiting=lambda step: depths.of(topology.queue_name(step)),
            )
        finally:
            depths.close()
        return swept.redriven + swept.gave_up

    return Chore("sweep stalled chains", settings.sweep_interval, run)


# Folding is cheap when caught up (one probe of the seq index); often enough that a scrape's
# rows not yet folded stay a few minutes' worth.
FOLD_EVERY = 30.0


def relay_chores(settings: Settings, topology: Topology, connection: Connection) -> list[Chore]:
    if settings.trial:
        # Trial mode's SQLite cannot run these queries (LATERAL, SKIP LOCKED, FILTER on JSON);
        # a demo's history is small anyway.
        return []
    return [
        sweep_chore(settings, topology, connection),
        Chore("fold audit rows into counts", FOLD_EVERY, audit_rollup.fold),
    ]
