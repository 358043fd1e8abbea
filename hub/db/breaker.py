"""A circuit breaker per downstream system, kept in PostgreSQL so every worker on every host
shares it: past ``threshold`` consecutive failures the system gets a rest of ``cooldown``
seconds, then exactly one probe; its answer closes the breaker or opens it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hub.core.breaker_policy import BreakerPolicy
from hub.core.errors import DownstreamError, TransientError
from hub.db import audit
from hub.db.dialect import insert_for
from hub.db.models import BreakerState


@dataclass(frozen=True)
class Decision:
    allowed: bool
    # Seconds until it is worth asking again (when not allowed).
    wait: float = 0.0
    probe: bool = False


def counts_against(error: DownstreamError) -> bool:
    """Only signs of a system being down trip the breaker: no answer, or a 5xx.

    A 429 is the system working as designed (and carries its own Retry-After); a 4xx is an
    answer about the request, not about the system's health.
    """
    return isinstance(error, TransientError) and (error.status is None or error.status >= 500)


def _row(session: Session, system: str) -> BreakerState:
    session.execute(
        insert_for(session, BreakerState).values(system=system).on_conflict_do_nothing()
    )
    return session.scalars(
        select(BreakerState).where(BreakerState.system == system).with_for_update()
    ).one()


def before_call(
    session: Session, system: str, policy: BreakerPolicy, *, now: datetime | None = None
) -> Decision:
    """May a call to ``system`` go ahead now? The closed path is one unlocked read."""
    now = now or datetime.now(UTC)
    state = session.scalar(select(BreakerState.state).where(BreakerState.system == system))
    if state in (None, "closed"):
        return Decision(allowed=True)
    row = _row(session, system)
    if row.state == "closed":
        return Decision(allowed=True)
    assert row.retry_at is not None
    if now < row.retry_at:
        return Decision(allowed=False, wait=(row.retry_at - now).total_seconds())
    # Cool-down over (or the last probe's lease ran out): this caller is the one probe.
    row.state = "half_open"
    row.retry_at = now + timedelta(seconds=policy.probe_lease)
    row.updated_at = now
    return Decision(allowed=True, probe=True)


def after_success(session: Session, system: str, *, now: datetime | None = None) -> None:
    """The system answered: forget its failures, and close the breaker if it was not closed."""
    now = now or datetime.now(UTC)
    reopened = session.execute(
        update(BreakerState)
        .where(BreakerState.system == system)
        .where((BreakerState.state != "closed") | (BreakerState.consecutive_failures > 0))
        .values(state="closed", consecutive_failures=0, retry_at=None, updated_at=now)
        .returning(BreakerState.opened_at)
    ).first()
    if reopened is not None and reopened.opened_at is not None:
        session.execute(
            update(BreakerState).where(BreakerState.system == system).values(opened_at=None)
        )
        audit.record(
            session,
            audit.BREAKER_CLOSED,
            system=system,
            open_for_s=round((now - reopened.opened_at).total_seconds(), 1),
        )


def after_failure(
    session: Session,
    system: str,
    policy: BreakerPolicy,
    error: DownstreamError,
    *,
    now: datetime | None = None,
) -> None:
    """Count a failure; open the breaker past the threshold, or again after a failed probe."""
    if not counts_against(error):
        after_success(session, system, now=now)
        return
    now = now or datetime.now(UTC)
    row = _row(session, system)
    row.consecutive_failures += 1
    row.updated_at = now
    trips = row.state == "half_open" or (
        row.state == "closed" and row.consecutive_failures >= policy.threshold
    )
    if not trips:
        return
    was = row.state
    row.state = "open"
    row.opened_at = row.opened_at or now
    row.retry_at = now + timedelta(seconds=policy.cooldown)
    audit.record(
        session,
        audit.BREAKER_OPENED,
        status="error",
        system=system,
        after=was,
        consecutive_failures=row.consecutive_failures,
        cooldown_s=policy.cooldown,
        error=str(error)[:300],
    )
