"""The breakers' shared state: one row per downstream system, read and changed under its lock.

Every worker on every host decides with the same row. The decisions themselves are
``hub.core.breaker``'s; this module only loads a row into a ``Breaker``, applies a decision and
writes the row back, with an audit row for each change. The closed path never comes here: the
hot path's statements read the row and count calls themselves (``hub.db.hot_path``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.core.breaker import Admission, Breaker, BreakerPolicy, Change, Mode, admit, record
from hub.core.errors import DownstreamError, TransientError
from hub.db import audit
from hub.db.dialect import insert_for
from hub.db.models import BreakerState

AUDIT_OF_CHANGE = {
    Change.OPENED: audit.BREAKER_OPENED,
    Change.REOPENED: audit.BREAKER_OPENED,
    Change.CLOSED: audit.BREAKER_CLOSED,
}


def counts_against(error: DownstreamError) -> bool:
    """Only signs of a system being down count as failures: no answer, or a 5xx.

    A 429 is the system working as designed (and carries its own Retry-After); a 4xx is an
    answer about the request, not about the system's health.
    """
    return isinstance(error, TransientError) and error.system_down


def _seconds(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def _moment(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def as_breaker(row: BreakerState) -> Breaker:
    return Breaker(
        mode=Mode(row.state),
        window_started_at=_seconds(row.window_started_at),
        calls=row.calls,
        failures=row.failures,
        retry_failures=row.retry_failures,
        opened_at=_seconds(row.opened_at),
        retry_at=_seconds(row.retry_at),
        probes=row.probes,
        probe_successes=row.probe_successes,
        probe_failures=row.probe_failures,
    )


def _store(row: BreakerState, breaker: Breaker, now: float) -> None:
    row.state = breaker.mode.value
    row.window_started_at = _moment(breaker.window_started_at)
    row.calls = breaker.calls
    row.failures = breaker.failures
    row.retry_failures = breaker.retry_failures
    row.opened_at = _moment(breaker.opened_at)
    row.retry_at = _moment(breaker.retry_at)
    row.probes = breaker.probes
    row.probe_successes = breaker.probe_successes
    row.probe_failures = breaker.probe_failures
    row.updated_at = _moment(now) or row.updated_at


def _locked(session: Session, system: str) -> BreakerState:
    session.execute(
        insert_for(session, BreakerState).values(system=system).on_conflict_do_nothing()
    )
    return session.scalars(
        select(BreakerState).where(BreakerState.system == system).with_for_update()
    ).one()


def admit_call(
    session: Session, system: str, policy: BreakerPolicy, *, now: float | None = None
) -> Admission:
    """The slow gate, for a breaker that is not closed: probe, or hold the step back."""
    now = now if now is not None else datetime.now(UTC).timestamp()
    row = _locked(session, system)
    before = as_breaker(row)
    admission, after = admit(before, now=now, policy=policy)
    if not admission.allowed:
        row.held += 1
        return admission
    if after != before:
        _store(row, after, now)
        if before.mode is Mode.OPEN:
            audit.record(
                session, audit.BREAKER_HALF_OPEN, system=system, probes=policy.half_open_calls
            )
    return admission


def record_outcome(
    session: Session,
    system: str,
    policy: BreakerPolicy,
    *,
    error: DownstreamError | None,
    retried: bool = False,
    now: float | None = None,
) -> Change | None:
    """Count a call's outcome (a failure, or a probe's success) and audit any change."""
    now = now if now is not None else datetime.now(UTC).timestamp()
    failed = error is not None and counts_against(error)
    row = _locked(session, system)
    before = as_breaker(row)
    after, change = record(before, failed=failed, retried=retried, now=now, policy=policy)
    if after == before:
        return None
    _store(row, after, now)
    if change is None:
        return None
    if change is Change.CLOSED:
        row.held = 0
    detail: dict[str, Any] = {
        "system": system,
        "calls": before.calls if change is Change.OPENED else before.probes,
        "failures": before.failures + 1 if change is Change.OPENED else before.probe_failures,
    }
    if change is Change.CLOSED and before.opened_at is not None:
        detail["open_for_s"] = round(now - before.opened_at, 1)
    if change is not Change.CLOSED:
        detail["cooldown_s"] = policy.cooldown
        detail["after"] = before.mode.value
        detail["error"] = str(error)[:300]
    audit.record(
        session,
        AUDIT_OF_CHANGE[change],
        status="ok" if change is Change.CLOSED else "error",
        **detail,
    )
    return change
