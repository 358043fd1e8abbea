"""Idempotent writes and the record of every effect: the oracle for "exactly once"."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sandbox.protocol import ApiError, Reply

MAX_KEY_CHARS = 255


@dataclass(frozen=True)
class Effect:
    """What one applied write changed, and the reply it earned."""

    order_id: str
    id: str
    reply: Reply
    # The id of the effect this one undoes (a release, a cancellation, a credit note).
    compensates: str | None = None
    # What a test may want to see of the effect besides its id (a shipment's address, say).
    detail: dict[str, Any] | None = None


@dataclass(frozen=True)
class _Record:
    fingerprint: str
    reply: Reply


class Ledger:
    """Calls received, effects applied, and the replies stored per idempotency key."""

    def __init__(self, system: str, lock: threading.RLock) -> None:
        self.system = system
        # Shared with the state the writes change, so check, apply and record are one step.
        self._lock = lock
        self._calls = 0
        self._calls_lock = threading.Lock()
        self._effects: list[dict[str, Any]] = []
        self._records: dict[str, _Record] = {}
        # The ledger lives in memory: a restarted sandbox forgets what it applied before. Saying
        # when it began lets a reconcile tell "never applied" from "applied before the restart".
        self.started_at = time.time()

    def count_call(self) -> None:
        """Count one contract request, whatever becomes of it."""
        with self._calls_lock:
            self._calls += 1

    def apply_once(
        self, *, key: str, fingerprint: str, apply: Callable[[], Effect]
    ) -> tuple[Reply, bool]:
        """Apply a write once per key; return (reply, replayed). A failed write binds nothing."""
        if len(key) > MAX_KEY_CHARS:
            raise ApiError(400, "bad_idempotency_key", f"at most {MAX_KEY_CHARS} characters")
        with self._lock:
            record = self._records.get(key)
            if record is not None:
                if record.fingerprint != fingerprint:
                    raise ApiError(
                        422, "idempotency_key_reuse", f"key {key!r} was used with another body"
                    )
                return record.reply, True
            effect = apply()
            self._records[key] = _Record(fingerprint, effect.reply)
            entry: dict[str, Any] = {
                "idempotency_key": key,
                "order_id": effect.order_id,
                "id": effect.id,
                "at": time.time(),
            }
            if effect.compensates is not None:
                entry["compensates"] = effect.compensates
            if effect.detail:
                entry.update(effect.detail)
            self._effects.append(entry)
            return effect.reply, False

    def snapshot(self) -> dict[str, Any]:
        """The /_ledger document."""
        with self._lock:
            effects = list(self._effects)
        return {
            "system": self.system,
            "started_at": self.started_at,
            "calls": self._calls,
            "effects": effects,
        }
