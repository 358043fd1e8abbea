"""Idempotent writes and the record of every effect: the oracle for "exactly once"."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from adapters.sandbox.protocol import ApiError, Reply

MAX_KEY_CHARS = 255


@dataclass(frozen=True)
class Effect:
    """What one applied write changed, and the reply it earned."""

    order_id: str
    id: str
    reply: Reply


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
            self._effects.append(
                {
                    "idempotency_key": key,
                    "order_id": effect.order_id,
                    "id": effect.id,
                    "at": time.time(),
                }
            )
            return effect.reply, False

    def snapshot(self) -> dict[str, Any]:
        """The /_ledger document."""
        with self._lock:
            effects = list(self._effects)
        return {"system": self.system, "calls": self._calls, "effects": effects}
