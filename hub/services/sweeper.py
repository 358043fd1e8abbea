"""The sweeper: finds orders whose chain stopped without a dead letter and re-drives them.

A chain can stop with nothing left to carry it on: a parked retry RabbitMQ can no longer route,
a purged or deleted queue, a message lost with a broker's disk. No failure record is written,
so the order would stay ``received`` or ``processing`` for ever. The relay runs this duty every
``HUB_SWEEP_INTERVAL`` seconds.

An order is stalled when all of these hold:
- it is ``received`` or ``processing``, and has no unsent outbox row (that one the relay will
  publish);
- its last audit event, plus the delay that event announced (``delay_s`` of
  ``step.retry_scheduled`` and ``step.deferred``: a retry parked in RabbitMQ's delayed queues,
  or held by the breaker, is not lost, only waiting), plus ``HUB_SWEEP_AFTER``, has passed;
- the work queue of its step has no message ready: with a backlog the order's message may be in
  it (workers down, or slow), and re-driving would only double the backlog.

A ``cancelling`` order's chain of compensations is lost the same way (a purged queue under
its ``hub.compensate.<step>`` messages), and is found by the same tests, its step being the
next one to undo: the last succeeded step with a compensation not yet done. It is left alone
while a step of it is in flight (its compensations wait for it, without audit rows) or once the
next compensation failed for good (the operator's, through its failure). It is re-driven
through an outbox row of compensations from the last step, as a cancel queues them: the
compensation store passes what is undone already, and the ``<order id>:<step>:compensate``
Idempotency-Key keeps a late message from undoing anything twice. Given up on, it becomes a
failure of kind ``compensation`` (code ``stalled``): the order stays ``cancelling``, for the
operator to replay or close.

It is re-driven through the outbox from the step where it stopped (earlier steps are not run
again), with a ``chain.redriven`` audit row saying why. Steps are idempotent (a succeeded step
is not called again; a call carries the ``<order id>:<step>`` Idempotency-Key), so a re-drive
that races a message that was only late applies nothing twice. After ``HUB_SWEEP_TRIES``
re-drives of the same step without it succeeding, the order becomes a ``stalled`` failure for
an operator to replay or discard.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from hub.core.errors import DownstreamError
from hub.core.registry import REGISTRY
from hub.core.statuses import FailureKind, OutboxKind
from hub.db import audit, compensation_store
from hub.db.engine import unit_of_work
from hub.db.failures import FailureReport, record_failure
from hub.db.models import Order, OutboxMessage

# An order's newest audit row (one probe of the (order_id, seq) index): how long it has been
# idle, and the delay it was told to wait, if any. Both stalled-order queries read it.
_LAST_EVENT = """CROSS JOIN LATERAL (
    SELECT e.event_type, e.created_at,
           coalesce(CAST(e.detail ->> 'delay_s' AS double precision), 0) AS delay_s
    FROM integration_events AS e
    WHERE e.order_id = o.id
    ORDER BY e.seq DESC
    LIMIT 1
) AS ev
"""

# One statement finds the candidates, and locks them: orders by their status index (open
# orders are the few in flight, not the year's history), then per order three probes of the
# (order_id, seq) index of the audit trail, and one of the outbox's order index. Never a scan of
# the audit table. SKIP LOCKED: a second relay (or a worker finishing the order right now)
# keeps its rows; this sweeper takes others or none.
_STALLED = text(
    f"""
SELECT o.id, st.step, ev.event_type, ev.created_at, ev.delay_s,
       extract(epoch FROM clock_timestamp() - ev.created_at) AS idle_s, sw.tries
FROM orders AS o
CROSS JOIN LATERAL (
    SELECT s.step FROM step_outcomes AS s
    WHERE s.order_id = o.id AND s.status <> 'succeeded'
    ORDER BY array_position(CAST(:steps AS varchar[]), CAST(s.step AS varchar))
    LIMIT 1
) AS st
{_LAST_EVENT}CROSS JOIN LATERAL (
    SELECT count(*) AS tries FROM integration_events AS r
    WHERE r.order_id = o.id AND r.event_type = :redriven AND r.step = st.step
      AND r.seq > coalesce(
          (SELECT max(p.seq) FROM integration_events AS p
           WHERE p.order_id = o.id AND p.event_type = :replayed), 0)
) AS sw
WHERE o.status IN ('received', 'processing')
  AND NOT EXISTS (SELECT 1 FROM outbox AS x WHERE x.order_id = o.id AND x.sent_at IS NULL)
  AND ev.created_at + make_interval(secs => ev.delay_s + :after) < clock_timestamp()
  AND st.step = ANY(CAST(:idle_steps AS varchar[]))
LIMIT :limit
FOR UPDATE OF o SKIP LOCKED
"""
)


# The same tests for ``cancelling`` orders; the step is the next one to undo (none when only a
# step in flight had been waited for: then the chain's first, the pipeline's last step). The
# chain's message may sit in the queue of any step from the last back to that one (it passes
# the steps undone already): each of those queues must be idle.
_STALLED_COMPENSATIONS = text(
    f"""
SELECT o.id, st.step, st.compensation_status, ev.event_type, ev.created_at, ev.delay_s,
       extract(epoch FROM clock_timestamp() - ev.created_at) AS idle_s, sw.tries
FROM orders AS o
LEFT JOIN LATERAL (
    SELECT s.step, s.compensation_status FROM step_outcomes AS s
    WHERE s.order_id = o.id AND s.status = 'succeeded'
      AND s.step = ANY(CAST(:compensable AS varchar[]))
      AND s.compensation_status IS DISTINCT FROM 'succeeded'
    ORDER BY array_position(CAST(:steps AS varchar[]), CAST(s.step AS varchar)) DESC
    LIMIT 1
) AS st ON true
{_LAST_EVENT}CROSS JOIN LATERAL (
    SELECT count(*) AS tries FROM integration_events AS r
    WHERE r.order_id = o.id AND r.event_type = :redriven AND r.detail ->> 'compensating' = 'true'
      AND r.step = coalesce(st.step, CAST(o.pipeline AS jsonb) ->> -1)
      AND r.seq > coalesce(
          (SELECT max(p.seq) FROM integration_events AS p
           WHERE p.order_id = o.id AND p.event_type = :replayed), 0)
) AS sw
WHERE o.status = 'cancelling'
  AND st.compensation_status IS DISTINCT FROM 'failed'
  AND NOT EXISTS (SELECT 1 FROM outbox AS x WHERE x.order_id = o.id AND x.sent_at IS NULL)
  AND NOT EXISTS (
      SELECT 1 FROM step_outcomes AS f
      WHERE f.order_id = o.id AND f.status = 'running'
        AND f.updated_at > clock_timestamp() - make_interval(secs => :in_flight_s))
  AND ev.created_at + make_interval(secs => ev.delay_s + :after) < clock_timestamp()
  AND NOT EXISTS (
      SELECT 1 FROM jsonb_array_elements_text(CAST(o.pipeline AS jsonb))
          WITH ORDINALITY AS p(step, n)
      WHERE NOT (p.step = ANY(CAST(:idle_steps AS varchar[])))
        AND p.n >= coalesce(
            (SELECT q.n FROM jsonb_array_elements_text(CAST(o.pipeline AS jsonb))
                 WITH ORDINALITY AS q(step, n)
             WHERE q.step = st.step), 0))
LIMIT :limit
FOR UPDATE OF o SKIP LOCKED
"""
)


@dataclass(frozen=True)
class Stalled:
    order_id: uuid.UUID
    step: str
    last_event: str
    last_at: datetime
    # What the last event announced (a parked retry's delay), already waited out.
    announced_delay_s: float
    idle_s: float
    # Re-drives of this step since the order's last replay.
    tries: int
    # A cancelling order's compensations (``step``: the next one to undo).
    compensating: bool = False


@dataclass(frozen=True)
class Swept:
    redriven: int = 0
    gave_up: int = 0


def find_stalled(
    session: Session, *, after: float, limit: int, idle_steps: tuple[str, ...] = REGISTRY.step_names
) -> list[Stalled]:
    """Stalled orders waiting at one of ``idle_steps``, locked until the caller commits."""
    rows = session.execute(
        _STALLED,
        {
            "steps": list(REGISTRY.step_names),
            "idle_steps": list(idle_steps),
            "redriven": audit.CHAIN_REDRIVEN,
            "replayed": audit.REPLAYED,
            "after": after,
            "limit": limit,
        },
    ).all()
    return [
        Stalled(
            order_id=row.id,
            step=row.step,
            last_event=row.event_type,
            last_at=row.created_at,
            announced_delay_s=float(row.delay_s),
            idle_s=float(row.idle_s),
            tries=int(row.tries),
        )
        for row in rows
    ]


def find_stalled_compensations(
    session: Session, *, after: float, limit: int, idle_steps: tuple[str, ...] = REGISTRY.step_names
) -> list[Stalled]:
    """Cancelling orders whose compensations stopped, locked until the caller commits."""
    rows = session.execute(
        _STALLED_COMPENSATIONS,
        {
            "steps": list(REGISTRY.step_names),
            "compensable": [
                name for name in REGISTRY.step_names if REGISTRY.step(name).compensation
            ],
            "idle_steps": list(idle_steps),
            "redriven": audit.CHAIN_REDRIVEN,
            "replayed": audit.REPLAYED,
            "in_flight_s": compensation_store.IN_FLIGHT_LIMIT.total_seconds(),
            "after": after,
            "limit": limit,
        },
    ).all()
    found = []
    for row in rows:
        step = row.step or session.get_one(Order, row.id).pipeline[-1]
        found.append(
            Stalled(
                order_id=row.id,
                step=step,
                last_event=row.event_type,
                last_at=row.created_at,
                announced_delay_s=float(row.delay_s),
                idle_s=float(row.idle_s),
                tries=int(row.tries),
                compensating=True,
            )
        )
    return found


def _redrive(session: Session, stalled: Stalled, *, tries: int) -> None:
    if stalled.compensating:
        # From the last step, as a cancel queues them (the store passes what is undone).
        pipeline = session.get_one(Order, stalled.order_id).pipeline
        session.add(
            OutboxMessage(
                order_id=stalled.order_id, start_step=pipeline[-1], kind=OutboxKind.COMPENSATE
            )
        )
    else:
        session.add(OutboxMessage(order_id=stalled.order_id, start_step=stalled.step))
    audit.record(
        session,
        audit.CHAIN_REDRIVEN,
        status="retry",
        order_id=stalled.order_id,
        step=stalled.step,
        reason=(
            f"no progress for {stalled.idle_s:.0f}s since {stalled.last_event} "
            f"(it announced {stalled.announced_delay_s:.0f}s) and no message waiting: "
            + ("compensations re-driven" if stalled.compensating else "re-driven from this step")
        ),
        compensating=stalled.compensating,
        last_event=stalled.last_event,
        idle_s=round(stalled.idle_s, 1),
        announced_delay_s=stalled.announced_delay_s,
        attempt_of_sweeper=stalled.tries + 1,
        sweep_tries=tries,
    )


def _give_up(session: Session, stalled: Stalled) -> None:
    if stalled.compensating:
        message = (
            f"the compensations stopped at {stalled.step} without a dead letter and "
            f"{stalled.tries} re-drive(s) did not get them going "
            f"(last event {stalled.last_event}, {stalled.idle_s:.0f}s ago); "
            "check the queues with hub doctor, then replay or close"
        )
        compensation_store.give_up(
            session,
            stalled.order_id,
            stalled.step,
            kind=FailureKind.STALLED,
            error=DownstreamError(REGISTRY.system_of(stalled.step), message, code="stalled"),
            attempts=stalled.tries,
        )
        return
    record_failure(
        session,
        FailureReport(
            order_id=stalled.order_id,
            step=stalled.step,
            kind="stalled",
            message=(
                f"the chain stopped at {stalled.step} without a dead letter and "
                f"{stalled.tries} re-drive(s) did not get it going "
                f"(last event {stalled.last_event}, {stalled.idle_s:.0f}s ago); "
                "check the queues with hub doctor, then replay"
            ),
            attempts=stalled.tries,
        ),
    )


def sweep(
    session: Session,
    *,
    after: float,
    tries: int,
    limit: int,
    idle_steps: tuple[str, ...] = REGISTRY.step_names,
) -> Swept:
    """Re-drive (or give up on) the stalled orders found now. The caller commits, which
    releases the locks; the relay publishes the outbox rows."""
    redriven = gave_up = 0
    found = find_stalled(session, after=after, limit=limit, idle_steps=idle_steps)
    found += find_stalled_compensations(session, after=after, limit=limit, idle_steps=idle_steps)
    for stalled in found:
        if stalled.tries >= tries:
            _give_up(session, stalled)
            gave_up += 1
        else:
            _redrive(session, stalled, tries=tries)
            redriven += 1
    return Swept(redriven, gave_up)


def sweep_once(
    *,
    after: float,
    tries: int,
    limit: int,
    waiting: Callable[[str], int | None] = lambda _: 0,
) -> Swept:
    """One pass in its own transaction. ``waiting(step)``: messages ready in the step's work
    queue (None if unknown); steps with a backlog are left alone this time."""
    idle_steps = tuple(step for step in REGISTRY.step_names if not waiting(step))
    if not idle_steps:
        return Swept()
    with unit_of_work() as session:
        return sweep(session, after=after, tries=tries, limit=limit, idle_steps=idle_steps)
