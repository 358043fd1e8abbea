"""Fault injection of one sandbox server: latency, outage, flaky failures, random errors."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import asdict, dataclass, replace
from email.utils import formatdate
from typing import Any

from adapters.sandbox.checks import invalid
from adapters.sandbox.protocol import Reply

BODY_KINDS = ("json", "html", "empty", "reset")


@dataclass(frozen=True)
class Faults:
    """What to break; the defaults break nothing."""

    error_rate: float = 0.0
    status: int = 503
    latency_ms: int = 0
    down: bool = False
    retry_after: int | None = None
    fail_next: int = 0
    # How an injected failure looks: our JSON, a proxy's HTML page, an empty body, or no answer
    # at all (the connection reset, as a crashed proxy or a load balancer does).
    body: str = "json"
    # The first call of each Idempotency-Key fails and its repeat goes through: a cold cache or
    # a proxy that drops the first request of a connection, half the calls failing for good.
    first_call_fails: bool = False
    # Retry-After as an HTTP date (retry_after seconds ahead) instead of a number of seconds.
    retry_after_date: bool = False

    def to_json(self) -> dict[str, Any]:
        """The settings as sent to and shown by /_faults."""
        return asdict(self)


def parse_faults(payload: Any) -> Faults:
    """Faults from a POST /_faults body; unknown fields or bad values are a 422."""
    if not isinstance(payload, dict):
        raise invalid("faults must be a JSON object")
    unknown = sorted(set(payload) - set(Faults.__dataclass_fields__))
    if unknown:
        raise invalid(f"unknown fault fields: {', '.join(unknown)}")
    rate = payload.get("error_rate", 0.0)
    if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
        raise invalid("error_rate must be a number between 0 and 1")
    status = _int(payload, "status", 503, low=400, high=599)
    retry_after = payload.get("retry_after")
    if retry_after is not None:
        retry_after = _int(payload, "retry_after", 0, low=0, high=86_400)
    down = _bool(payload, "down")
    body = payload.get("body", "json")
    if body not in BODY_KINDS:
        raise invalid(f"body must be one of {', '.join(BODY_KINDS)}")
    return Faults(
        error_rate=float(rate),
        status=status,
        latency_ms=_int(payload, "latency_ms", 0, low=0, high=600_000),
        down=down,
        retry_after=retry_after,
        fail_next=_int(payload, "fail_next", 0, low=0, high=1_000_000),
        body=body,
        first_call_fails=_bool(payload, "first_call_fails"),
        retry_after_date=_bool(payload, "retry_after_date"),
    )


def _bool(payload: dict[str, Any], field: str) -> bool:
    value = payload.get(field, False)
    if not isinstance(value, bool):
        raise invalid(f"{field} must be true or false")
    return value


def _int(payload: dict[str, Any], field: str, default: int, *, low: int, high: int) -> int:
    value = payload.get(field, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise invalid(f"{field} must be an integer from {low} to {high}")
    return value


class FaultSwitch:
    """The current faults of one server, applied to each contract request before any effect."""

    def __init__(self, system: str, *, rng: random.Random | None = None) -> None:
        self.system = system
        self._faults = Faults()
        self._lock = threading.Lock()
        self._rng = rng or random.Random()
        # Keys already called once, for first_call_fails (forgotten when the faults change).
        self._seen: set[str] = set()

    def current(self) -> Faults:
        """The faults in force (fail_next counts down as failures are served)."""
        return self._faults

    def set(self, faults: Faults) -> Faults:
        """Replace the faults in force."""
        with self._lock:
            self._faults = faults
            self._seen.clear()
        return faults

    def clear(self) -> Faults:
        """Break nothing any more."""
        return self.set(Faults())

    def strike(self, idempotency_key: str | None = None) -> Reply | None:
        """Sleep the injected latency, then return the failure to answer, if any."""
        latency = self._faults.latency_ms
        if latency:
            time.sleep(latency / 1000)
        with self._lock:
            faults = self._faults
            if faults.down:
                return _failure(faults, 503, "down", f"{self.system} sandbox is down")
            if faults.fail_next > 0:
                self._faults = replace(faults, fail_next=faults.fail_next - 1)
                return _failure(faults, faults.status, "fault_injected", "injected failure")
            if faults.error_rate and self._rng.random() < faults.error_rate:
                return _failure(faults, faults.status, "fault_injected", "injected random failure")
            if faults.first_call_fails and idempotency_key and idempotency_key not in self._seen:
                self._seen.add(idempotency_key)
                return _failure(faults, faults.status, "fault_injected", "first call fails")
        return None


def _failure(faults: Faults, status: int, code: str, detail: str) -> Reply:
    if faults.body == "reset":
        return Reply.reset()
    headers: tuple[tuple[str, str], ...] = ()
    if faults.retry_after is not None:
        retry_after = str(faults.retry_after)
        if faults.retry_after_date:
            retry_after = formatdate(time.time() + faults.retry_after, usegmt=True)
        headers = (("Retry-After", retry_after),)
    if faults.body == "html":
        page = f"<html><head><title>{status}</title></head><body><h1>{detail}</h1></body></html>"
        return Reply(status, page.encode(), "text/html; charset=utf-8", headers)
    if faults.body == "empty":
        return Reply(status, b"", "text/plain", headers)
    return Reply.json(status, {"error": code, "detail": detail}, headers)
