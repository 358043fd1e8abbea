"""Fault injection of one sandbox server: latency, outage, flaky failures, random errors."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import asdict, dataclass, replace
from email.utils import formatdate
from typing import Any

from sandbox.checks import invalid
from sandbox.protocol import Reply

BODY_KINDS = ("json", "html", "empty", "reset", "drip", "huge")
# The longest hostile code or detail a test may inject (they are the downstream's words).
MAX_INJECTED_CHARS = 10_000


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
    # at all (the connection reset, as a crashed proxy or a load balancer does); or a hostile
    # answer: our JSON sent one byte every drip_ms ("drip"), or followed by huge_bytes of
    # spaces ("huge").
    body: str = "json"
    drip_ms: int = 1000
    huge_bytes: int = 200 << 20
    # The injected failure's error code and detail (None: "fault_injected" and a sentence):
    # text from a downstream that may carry markup, escapes, NUL or be very long.
    code: str | None = None
    detail: str | None = None
    # The first call of each Idempotency-Key fails and its repeat goes through: a cold cache or
    # a proxy that drops the first request of a connection, half the calls failing for good.
    first_call_fails: bool = False
    # Retry-After as an HTTP date (retry_after seconds ahead) instead of a number of seconds.
    retry_after_date: bool = False
    # A quota, as rate-limited SaaS enforce one: a 429 for a call beyond this many in flight
    # at once, or beyond this many calls in the current second (None: no quota).
    max_in_flight: int | None = None
    max_per_second: int | None = None
    # Warehouse: a shipment leaves this many seconds after it was created, and can no longer be
    # cancelled (409 already_dispatched). None: shipments never leave.
    dispatch_after_s: float | None = None

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
    dispatch_after = payload.get("dispatch_after_s")
    if dispatch_after is not None and (
        isinstance(dispatch_after, bool)
        or not isinstance(dispatch_after, int | float)
        or not 0 <= dispatch_after <= 86_400
    ):
        raise invalid("dispatch_after_s must be a number of seconds from 0 to 86400, or null")
    quota = {
        name: None if payload.get(name) is None else _int(payload, name, 0, low=1, high=100_000)
        for name in ("max_in_flight", "max_per_second")
    }
    return Faults(
        **quota,
        code=_text(payload, "code"),
        detail=_text(payload, "detail"),
        drip_ms=_int(payload, "drip_ms", 1000, low=1, high=60_000),
        huge_bytes=_int(payload, "huge_bytes", 200 << 20, low=0, high=1 << 32),
        dispatch_after_s=None if dispatch_after is None else float(dispatch_after),
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


def _text(payload: dict[str, Any], field: str) -> str | None:
    value = payload.get(field)
    if value is not None and (not isinstance(value, str) or len(value) > MAX_INJECTED_CHARS):
        raise invalid(f"{field} must be a string of at most {MAX_INJECTED_CHARS} characters")
    return value


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
        # The quota's view: calls in flight now, the most seen at once, 429s it answered, and
        # the calls of the current second (all counted since the faults last changed).
        self.in_flight = 0
        self.max_in_flight = 0
        self.throttled = 0
        self._second = 0
        self._this_second = 0

    def enter(self) -> Reply | None:
        """A contract call arrives: count it in flight, or refuse it by the quota (a 429)."""
        with self._lock:
            faults = self._faults
            now = int(time.monotonic())
            if now != self._second:
                self._second, self._this_second = now, 0
            over = (
                faults.max_in_flight is not None and self.in_flight >= faults.max_in_flight
            ) or (faults.max_per_second is not None and self._this_second >= faults.max_per_second)
            self._this_second += 1
            if over:
                self.throttled += 1
                return _failure(replace(faults, body="json"), 429, "quota_exceeded", "quota")
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            return None

    def leave(self) -> None:
        """A call counted by ``enter`` was answered."""
        with self._lock:
            self.in_flight -= 1

    def quota_seen(self) -> dict[str, int]:
        """What /_ledger reports of the calls in flight (now and at most) and the quota's 429s."""
        with self._lock:
            return {
                "in_flight": self.in_flight,
                "max_in_flight": self.max_in_flight,
                "throttled": self.throttled,
            }

    def current(self) -> Faults:
        """The faults in force (fail_next counts down as failures are served)."""
        return self._faults

    def set(self, faults: Faults) -> Faults:
        """Replace the faults in force."""
        with self._lock:
            self._faults = faults
            self._seen.clear()
            self.max_in_flight, self.throttled = self.in_flight, 0
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
            code = faults.code or "fault_injected"
            if faults.fail_next > 0:
                self._faults = replace(faults, fail_next=faults.fail_next - 1)
                return _failure(faults, faults.status, code, faults.detail or "injected failure")
            if faults.error_rate and self._rng.random() < faults.error_rate:
                detail = faults.detail or "injected random failure"
                return _failure(faults, faults.status, code, detail)
            if faults.first_call_fails and idempotency_key and idempotency_key not in self._seen:
                self._seen.add(idempotency_key)
                return _failure(faults, faults.status, code, faults.detail or "first call fails")
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
    reply = Reply.json(status, {"error": code, "detail": detail}, headers)
    if faults.body == "drip":
        return replace(reply, drip_s=faults.drip_ms / 1000)
    if faults.body == "huge":
        return replace(reply, padding=faults.huge_bytes)
    return reply
