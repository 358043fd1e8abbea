"""Bulk replays from the page: run after the response, at a set rate, one per scope at a time.

A group of 300 at 5 a second takes a minute, longer than a browser or a proxy should wait, so
the page answers at once and the replays go on in this process (the list shrinks as they go).
If the process stops half way, the failures not reached stay open: replaying the group again
picks up the rest, and what was replayed is not replayed twice.

A second click or a second tab on the same scope while one runs is told so and starts nothing,
which would otherwise double the rate a recovering system sees. Between API processes the
failure's row lock (``hub.services.replay.replay_one``) still replays each failure once.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from hub.services.replay import Resolution, replay_one, resolve_many

log = logging.getLogger("hub.ui")


@dataclass(frozen=True)
class Running:
    operator: str
    started_at: datetime
    total: int


class BulkReplays:
    def __init__(self, publish: Callable[[int], bool]) -> None:
        # Publishes a replay's outbox row now (the relay does it later if the broker is away).
        self._publish = publish
        self._running: dict[str, Running] = {}
        self._lock = threading.Lock()

    def claim(self, scope: str, *, operator: str, total: int) -> Running | None:
        """Reserve ``scope`` for a bulk replay; the one already running there, if any."""
        with self._lock:
            if scope in self._running:
                return self._running[scope]
            self._running[scope] = Running(operator, datetime.now(UTC), total)
            return None

    def run(
        self,
        scope: str,
        failure_ids: Sequence[uuid.UUID],
        *,
        operator: str,
        reason: str,
        per_second: float,
    ) -> None:
        """Replay the failures of a claimed scope, then release it (whatever happens)."""

        def publish(result: Resolution) -> None:
            if result.outbox_id is not None:
                self._publish(result.outbox_id)

        try:
            results = resolve_many(
                failure_ids,
                replay_one,
                operator=operator,
                reason=reason,
                per_second=per_second,
                on_each=publish,
            )
            replayed = sum(1 for r in results if r.outcome == "replayed")
            log.info(
                "bulk replay of %s by %s: %d replayed, %d skipped",
                scope,
                operator,
                replayed,
                len(results) - replayed,
            )
        except Exception:
            # Nothing to tell the browser any more; the failures not reached stay open.
            log.exception("bulk replay of %s by %s stopped", scope, operator)
        finally:
            with self._lock:
                self._running.pop(scope, None)
