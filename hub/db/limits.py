"""Per-system limits kept in PostgreSQL, shared by every worker on every host.

The decisions are ``hub.core.limits``'s; this module loads the shared state under the
system's row lock, applies a decision and writes it back. Why it holds under kills:

- A call in flight holds a row of ``system_slots`` with a lease (``expires_at``). The worker
  deletes it when the call ends (success, failure or exception). A worker killed meanwhile
  (SIGKILL, a host lost) cannot, so the next request for a slot of that system deletes every
  lapsed lease first: a dead worker's slot comes back at most ``lease`` seconds after it was
  taken. The lease is the HTTP timeouts (connect + read) plus a margin, so a live call
  always ends, or fails, before its lease lapses: a slot is never given to a second call while
  the first is still waiting for its answer.
- Taking a slot is one transaction under ``system_limits``'s row lock (``FOR UPDATE``), so two
  workers cannot both see the last free slot. PostgreSQL releases the lock if the worker dies
  mid-transaction; nothing is left half-taken.
- Session-scoped advisory locks would give a slot back the moment a killed worker's connection
  closes, but need a connection held open for the whole call (32 per worker on the threads
  pool, against PostgreSQL's ``max_connections``) and break behind a transaction-pooling
  PgBouncer; leases need neither.

A step that gets no slot first waits for one in its worker thread, for at most
``HUB_THROTTLE__SLOT_WAIT`` seconds, woken when a slot is given back (``hub.db.slot_wakes``);
then it is deferred in the broker (``Wait``): no attempt spent, nothing held in the worker.
Its place in the queue is a ``system_waiters`` row kept across waits and deferrals.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.orm import Session

from hub.core.limits import (
    Grant,
    Shared,
    SystemLimits,
    ThrottlePolicy,
    Wait,
    adaptive_recovered,
    after_throttle,
    decide,
    rate_in_force,
)
from hub.db import audit
from hub.db.engine import autocommit

SYSTEM_COOLING = "system.cooling"
SYSTEM_THROTTLED = "system.throttled"


@dataclass(frozen=True)
class Slot:
    """A call allowed to start; ``id`` is its slot (None: no max-in-flight to hold)."""

    system: str
    id: uuid.UUID | None


LOCK_ROW = text(
    """
SELECT extract(epoch FROM cooling_until) AS cooling_until,
       adaptive_rate, extract(epoch FROM adaptive_at) AS adaptive_at,
       tokens, extract(epoch FROM tokens_at) AS tokens_at, call_seconds
FROM system_limits WHERE system = :system FOR UPDATE
"""
)

# Under the row lock: drop lapsed leases and forgotten waiters, then count what is held and
# who waits ahead of this step (waiters due back now that were deferred before it first was).
LOOK = text(
    """
WITH lapsed AS (
    DELETE FROM system_slots WHERE system = :system AND expires_at <= clock_timestamp()
    RETURNING 1
),
forgotten AS (
    DELETE FROM system_waiters
    WHERE system = :system AND due_at < clock_timestamp() - make_interval(secs => :grace)
    RETURNING 1
),
me AS (SELECT since FROM system_waiters WHERE system = :system AND holder = :holder)
SELECT extract(epoch FROM clock_timestamp()) AS now,
       (SELECT count(*) FROM system_slots
        WHERE system = :system AND expires_at > clock_timestamp()) AS held,
       (SELECT count(*) FROM system_waiters w
        WHERE w.system = :system AND w.holder <> :holder
          AND w.due_at <= clock_timestamp() + interval '0.5 seconds'
          AND w.due_at >= clock_timestamp() - make_interval(secs => :grace)
          AND w.since < coalesce((SELECT since FROM me), clock_timestamp())) AS ahead,
       (SELECT count(*) FROM lapsed) AS lapsed,
       (SELECT count(*) FROM forgotten) AS forgotten
"""
)

# The slot given back, and a notice to the steps waiting for one (``hub.db.slot_wakes``):
# PostgreSQL delivers it at commit, to every worker's listening connection.
RELEASE = text(
    """
WITH gone AS (DELETE FROM system_slots WHERE id = :id RETURNING system),
mean AS (
    UPDATE system_limits SET call_seconds = 0.8 * call_seconds + 0.2 * :seconds
    WHERE system IN (SELECT system FROM gone)
)
SELECT pg_notify(:channel, system) FROM gone
"""
)

SLOT_FREED = "hub_slot_freed"


def _moment(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def _lock(session: Session, system: str) -> dict[str, Any]:
    session.execute(
        text(
            "INSERT INTO system_limits (system, updated_at) VALUES (:system, now())"
            " ON CONFLICT DO NOTHING"
        ),
        {"system": system},
    )
    return dict(session.execute(LOCK_ROW, {"system": system}).mappings().one())


def _shared(row: dict[str, Any], look: dict[str, Any] | None, now: float) -> Shared:
    return Shared(
        now=now,
        cooling_until=_float(row["cooling_until"]),
        held=int(look["held"]) if look else 0,
        ahead=int(look["ahead"]) if look else 0,
        tokens=_float(row["tokens"]),
        tokens_at=_float(row["tokens_at"]),
        adaptive_rate=_float(row["adaptive_rate"]),
        adaptive_at=_float(row["adaptive_at"]),
        call_seconds=float(row["call_seconds"]),
    )


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def acquire(
    session: Session,
    system: str,
    *,
    holder: str,
    limits: SystemLimits,
    policy: ThrottlePolicy,
    lease: float,
    waiting: bool = False,
) -> Slot | Wait:
    """Take a slot (and a token) for one call of ``holder`` (order id:step), or say how long
    to wait. Commit the session to make it count. ``waiting``: the caller waits for a slot in
    its thread meanwhile, so its place in the queue is due now (those who came after it stay
    behind it) and it is not counted as deferred."""
    row = _lock(session, system)
    look = dict(
        session.execute(LOOK, {"system": system, "holder": holder, "grace": policy.waiter_grace})
        .mappings()
        .one()
    )
    now = float(look["now"])
    shared = _shared(row, look, now)
    decision = decide(limits, shared, policy)
    if isinstance(decision, Wait):
        session.execute(
            text(
                """
INSERT INTO system_waiters (system, holder, since, due_at)
VALUES (:system, :holder, :now, :due)
ON CONFLICT (system, holder) DO UPDATE SET due_at = excluded.due_at
"""
            ),
            {
                "system": system,
                "holder": holder,
                "now": _moment(now),
                "due": _moment(now if waiting else now + decision.seconds),
            },
        )
        if not waiting:
            session.execute(
                text("UPDATE system_limits SET deferred = deferred + 1 WHERE system = :system"),
                {"system": system},
            )
        return decision
    assert isinstance(decision, Grant)
    slot_id = uuid.uuid4() if decision.slot else None
    if slot_id is not None:
        session.execute(
            text(
                "INSERT INTO system_slots (id, system, holder, taken_at, expires_at)"
                " VALUES (:id, :system, :holder, :now, :expires)"
            ),
            {
                "id": slot_id,
                "system": system,
                "holder": holder,
                "now": _moment(now),
                "expires": _moment(now + lease),
            },
        )
    recovered = adaptive_recovered(limits, shared, policy)
    session.execute(
        text(
            """
UPDATE system_limits
SET tokens = :tokens, tokens_at = :now, updated_at = :now,
    adaptive_rate = CASE WHEN :recovered THEN NULL ELSE adaptive_rate END,
    adaptive_at = CASE WHEN :recovered THEN NULL ELSE adaptive_at END
WHERE system = :system
"""
        ),
        {
            "system": system,
            "tokens": decision.tokens,
            "now": _moment(now),
            "recovered": recovered,
        },
    )
    session.execute(
        text("DELETE FROM system_waiters WHERE system = :system AND holder = :holder"),
        {"system": system, "holder": holder},
    )
    return Slot(system, slot_id)


def release(engine: Engine, slot: Slot, *, seconds: float) -> None:
    """The call holding ``slot`` ended: give the slot back (one statement)."""
    if slot.id is None:
        return
    with autocommit(engine).connect() as connection:
        connection.execute(
            RELEASE, {"id": slot.id, "seconds": max(0.0, seconds), "channel": SLOT_FREED}
        )


def throttled(
    session: Session,
    system: str,
    *,
    retry_after: float | None,
    limits: SystemLimits,
    policy: ThrottlePolicy,
) -> None:
    """A call got a 429: cool the system until its Retry-After and lower its rate, for every
    worker; an audit row when a cooling starts or the rate goes down."""
    row = _lock(session, system)
    now = float(session.execute(text("SELECT extract(epoch FROM clock_timestamp())")).scalar_one())
    shared = _shared(row, None, now)
    after = after_throttle(limits, shared, policy, retry_after=retry_after)
    was_cooling = shared.cooling_until is not None and shared.cooling_until > now
    session.execute(
        text(
            """
UPDATE system_limits
SET cooling_until = :cooling, adaptive_rate = :rate,
    adaptive_at = CASE WHEN :decreased THEN :now ELSE adaptive_at END,
    tokens = CASE WHEN :bucket THEN :tokens ELSE tokens END,
    tokens_at = CASE WHEN :bucket THEN :tokens_at ELSE tokens_at END,
    throttled = throttled + 1, updated_at = :now
WHERE system = :system
"""
        ),
        {
            "system": system,
            "cooling": _moment(after.cooling_until),
            "rate": after.adaptive_rate,
            "decreased": after.decreased,
            "bucket": after.tokens is not None,
            "tokens": after.tokens,
            "tokens_at": _moment(after.tokens_at),
            "now": _moment(now),
        },
    )
    if after.cooling_changed and not was_cooling and after.cooling_until is not None:
        audit.record(
            session,
            SYSTEM_COOLING,
            status="retry",
            system=system,
            retry_after_s=retry_after,
            until=_moment(after.cooling_until).isoformat(),  # type: ignore[union-attr]
        )
    if after.decreased:
        before = rate_in_force(limits, shared, policy)
        audit.record(
            session,
            SYSTEM_THROTTLED,
            status="retry",
            system=system,
            rate_before=None if before is None else round(before, 2),
            rate=None if after.adaptive_rate is None else round(after.adaptive_rate, 2),
            retry_after_s=retry_after,
        )


@dataclass(frozen=True)
class LimitView:
    """What operators see of one system's limits (``hub breakers``, status, /metrics)."""

    system: str
    cooling_until: datetime | None
    rate_in_force: float | None
    in_flight: int
    waiting: int
    throttled: int
    deferred: int
    now: datetime

    @property
    def cooling(self) -> bool:
        return self.cooling_until is not None and self.cooling_until > self.now


VIEW = text(
    """
SELECT l.system, l.cooling_until, l.adaptive_rate, extract(epoch FROM l.adaptive_at) AS adaptive_at,
       l.throttled, l.deferred, clock_timestamp() AS now,
       (SELECT count(*) FROM system_slots s
        WHERE s.system = l.system AND s.expires_at > clock_timestamp()) AS in_flight,
       (SELECT count(*) FROM system_waiters w
        WHERE w.system = l.system
          AND w.due_at >= clock_timestamp() - make_interval(secs => :grace)) AS waiting
FROM system_limits l ORDER BY l.system
"""
)


def views(
    session: Session | Connection, limits_of: Any, policy: ThrottlePolicy
) -> dict[str, LimitView]:
    """Every system with limit state, by name (``limits_of(system)`` gives its settings)."""
    found = {}
    for row in session.execute(VIEW, {"grace": policy.waiter_grace}).mappings():
        now: datetime = row["now"]
        shared = Shared(
            now=now.timestamp(),
            adaptive_rate=_float(row["adaptive_rate"]),
            adaptive_at=_float(row["adaptive_at"]),
        )
        limits: SystemLimits = limits_of(row["system"])
        found[row["system"]] = LimitView(
            system=row["system"],
            cooling_until=row["cooling_until"],
            rate_in_force=rate_in_force(limits, shared, policy),
            in_flight=int(row["in_flight"]),
            waiting=int(row["waiting"]),
            throttled=int(row["throttled"]),
            deferred=int(row["deferred"]),
            now=now,
        )
    return found


def limit_gate_sql() -> str:
    """The hot path's test, in SQL: is ``:system`` cooling or under an adaptive rate? Then its
    steps take the slow path through ``acquire``."""
    return (
        "EXISTS (SELECT 1 FROM system_limits WHERE system = :system"
        " AND (cooling_until > now() OR adaptive_rate IS NOT NULL))"
    )
