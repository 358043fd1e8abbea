"""Bulk replays from the page: in a thread of their own, at a set rate, one per scope at a time.

A group of 300 at 5 a second takes a minute, longer than a browser or a proxy should wait, so
the page answers at once and the replays go on in this process (the list shrinks as they go).
They start before the answer is sent, not after it (as a response's background task would), so
a browser that gives up on the answer, a double click say, cannot leave a scope claimed with
nothing running. If the process stops half way, the failures not reached stay open: replaying
the group again picks up the rest, and what was replayed is not replayed twice.

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

    def start(
        self,
        scope: str,
        failure_ids: Sequence[uuid.UUID],
        *,
        operator: str,
        reason: str,
        per_second: float,
    ) -> Running | None:
        """Start replaying ``failure_ids`` unless ``scope`` is being replayed: then that one."""
        with self._lock:
            if scope in self._running:
                return self._running[scope]
            self._running[scope] = Running(operator, datetime.now(UTC), len(failure_ids))
        threading.Thread(
            target=self.run,
            args=(scope, failure_ids),
            kwargs={"operator": operator, "reason": reason, "per_second": per_second},
            name=f"bulk-replay {scope}",
            # A replay cut short by a shutdown leaves its failures open, which is safe.
            daemon=True,
        ).start()
        return None

    def publish(self, outbox_id: int) -> bool:
        """Publish one outbox row now (a cancel's compensations); the relay does it otherwise."""
        return self._publish(outbox_id)

    def running(self, scope: str) -> Running | None:
        with self._lock:
            return self._running.get(scope)

    def run(
        self,
        scope: str,
        failure_ids: Sequence[uuid.UUID],
        *,
        operator: str,
        reason: str,
        per_second: float,
    ) -> None:
        """Replay the failures of a started scope, then release it (whatever happens)."""

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
