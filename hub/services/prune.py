"""Pruning history: settled orders' audit rows, sent outbox rows and resolved failures that are
older than a cutoff, deleted in small batches so no lock is held for long.

What stays, whatever its age:
- the whole audit trail of every order that is not settled: ``received`` or ``processing``, or
  ``failed`` with an open failure (an operator may still replay it). Settled: ``completed``, or
  ``failed`` with every failure resolved, and not changed since the cutoff;
- audit rows not yet folded into counts (``hub.services.audit_rollup``), so no counter drops;
- unsent outbox rows and open failures;
- the orders themselves, their lines and step outcomes: a pruned order still has its status
  and downstream ids, only its timeline is gone.

Each batch is its own short transaction that deletes by primary key; the walks go by index
(the audit trail by seq, oldest first, stopping at the cutoff).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from hub.db.engine import unit_of_work
from hub.services.audit_rollup import folded_up_to

BATCH = 5000

# The next batch of audit rows after ``after`` (folded ones only), each with whether it is old
# and whether its order is settled (or gone, or it has none: breaker events).
_AUDIT_BATCH = text(
    """
SELECT e.seq,
       e.created_at < :cutoff AS old,
       (o.id IS NULL
        OR (o.updated_at < :cutoff
            AND (o.status = 'completed'
                 OR (o.status = 'failed' AND NOT EXISTS (
                     SELECT 1 FROM failures AS f WHERE f.order_id = o.id AND f.state = 'open')))))
       AS settled
FROM integration_events AS e
LEFT JOIN orders AS o ON o.id = e.order_id
WHERE e.seq > :after AND e.seq <= :folded
ORDER BY e.seq
LIMIT :batch
"""
)
_DELETE_AUDIT = text("DELETE FROM integration_events WHERE seq = ANY(:seqs)")

_OUTBOX = "FROM outbox WHERE sent_at IS NOT NULL AND sent_at < :cutoff"
_FAILURES = "FROM failures WHERE state <> 'open' AND resolved_at < :cutoff"


@dataclass(frozen=True)
class Pruned:
    audit_rows: int = 0
    outbox_rows: int = 0
    failures: int = 0
    # True: nothing was deleted, these are what would be.
    dry_run: bool = False


def _prune_audit(cutoff: datetime, *, dry_run: bool, batch: int) -> int:
    with unit_of_work() as session:
        folded = folded_up_to(session)
    after, total = 0, 0
    while True:
        with unit_of_work() as session:
            rows = session.execute(
                _AUDIT_BATCH, {"cutoff": cutoff, "after": after, "folded": folded, "batch": batch}
            ).all()
            if not rows:
                return total
            doomed = [row.seq for row in rows if row.old and row.settled]
            if doomed and not dry_run:
                session.execute(_DELETE_AUDIT, {"seqs": doomed})
        total += len(doomed)
        after = rows[-1].seq
        if not any(row.old for row in rows):
            return total  # past the cutoff: the rest is younger


def _prune_table(
    table_rows: str, table: str, cutoff: datetime, *, dry_run: bool, batch: int
) -> int:
    if dry_run:
        with unit_of_work() as session:
            return int(
                session.execute(
                    text(f"SELECT count(*) {table_rows}"), {"cutoff": cutoff}
                ).scalar_one()
            )
    total = 0
    while True:
        with unit_of_work() as session:
            deleted = len(
                session.execute(
                    text(
                        f"DELETE FROM {table} WHERE id IN"
                        f" (SELECT id {table_rows} ORDER BY id LIMIT :batch) RETURNING id"
                    ),
                    {"cutoff": cutoff, "batch": batch},
                ).all()
            )
        total += deleted
        if deleted < batch:
            return total


def prune(
    *,
    older_than: timedelta,
    dry_run: bool,
    batch: int = BATCH,
    now: datetime | None = None,
) -> Pruned:
    """Delete (or, with ``dry_run``, count) the history older than ``older_than``."""
    cutoff = (now or datetime.now(UTC)) - older_than
    return Pruned(
        audit_rows=_prune_audit(cutoff, dry_run=dry_run, batch=batch),
        outbox_rows=_prune_table(_OUTBOX, "outbox", cutoff, dry_run=dry_run, batch=batch),
        failures=_prune_table(_FAILURES, "failures", cutoff, dry_run=dry_run, batch=batch),
        dry_run=dry_run,
    )
