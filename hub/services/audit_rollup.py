"""Folding the audit trail into counts, so reading the counters stays cheap for ever.

``/metrics`` and ``hub status`` used to count the whole ``integration_events`` table on every
scrape; after a year that is millions of rows. The relay now folds rows into ``audit_counts``
in batches, oldest first, and moves a mark (``audit_fold.seq``); a scrape reads the counts and
only the rows after the mark (by the seq index). Pruning deletes only folded rows, so no
counter ever goes down.

A row is folded once it is ``FOLD_LAG`` seconds old. ``seq`` is taken when a row is inserted,
not when its transaction commits: a row with a lower seq may become visible after one with a
higher seq. The lag leaves the hub's transactions (each well under a second) time to commit
before the mark passes them; a row whose transaction stayed open longer than the lag would be
left out of the counters (never out of the trail or a timeline).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from hub.db.dialect import insert_for
from hub.db.engine import unit_of_work
from hub.db.models import AuditCount, AuditFold
from hub.observability.snapshot.database import bucket_bounds, event_counts
from hub.observability.snapshot.facts import LATENCY_BUCKETS

FOLD_LAG = 60.0
BATCH = 50_000

# The highest seq of the next batch that is old enough: the batch stops before the first row
# younger than the lag, even if later rows look older (clocks of different hosts disagree).
_UPPER = text(
    "WITH batch AS (SELECT seq, created_at FROM integration_events"
    " WHERE seq > :folded ORDER BY seq LIMIT :batch)"
    " SELECT max(seq) FROM batch WHERE seq < coalesce("
    "  (SELECT min(seq) FROM batch"
    "   WHERE created_at > clock_timestamp() - make_interval(secs => :lag)),"
    "  9223372036854775807)"
)
_COUNT = event_counts("seq > :folded AND seq <= :upper")


def _lock_mark(session: Session) -> AuditFold | None:
    """The fold's mark, locked; None while another relay is folding."""
    session.execute(insert_for(session, AuditFold).values(id=1, seq=0).on_conflict_do_nothing())
    return session.get(AuditFold, 1, with_for_update={"skip_locked": True})


def _add(session: Session, row: Any) -> None:
    key = (str(row["event_type"]), str(row["step"]))
    counted = session.get(AuditCount, key) or AuditCount(
        event_type=key[0], step=key[1], n=0, timed=0, total_seconds=0.0, buckets=[]
    )
    session.add(counted)
    counted.n += int(row["n"])
    counted.timed += int(row["timed"])
    counted.total_seconds += float(row["total"])
    fresh = [int(row[f"le{i}"]) for i in range(len(LATENCY_BUCKETS))]
    old = list(counted.buckets or []) or [0] * len(fresh)
    counted.buckets = [a + b for a, b in zip(old, fresh, strict=True)]


def fold_batch(session: Session, *, batch: int = BATCH, lag: float = FOLD_LAG) -> int:
    """Fold the next batch of old-enough audit rows; return how many. The caller commits."""
    mark = _lock_mark(session)
    if mark is None:
        return 0
    upper = session.execute(_UPPER, {"folded": mark.seq, "batch": batch, "lag": lag}).scalar()
    if upper is None:
        return 0
    rows = session.execute(_COUNT, {"folded": mark.seq, "upper": upper, **bucket_bounds()})
    folded = 0
    for row in rows.mappings():
        _add(session, row)
        folded += int(row["n"])
    mark.seq = int(upper)
    mark.folded_at = datetime.now(UTC)
    return folded


def fold(*, batch: int = BATCH, lag: float = FOLD_LAG, max_batches: int = 20) -> int:
    """Fold batches, each in its own transaction, until caught up (or ``max_batches``)."""
    total = 0
    for _ in range(max_batches):
        with unit_of_work() as session:
            folded = fold_batch(session, batch=batch, lag=lag)
        total += folded
        if folded == 0:
            break
    return total


def folded_up_to(session: Session) -> int:
    """Audit rows with seq up to this are counted in ``audit_counts``."""
    mark = session.get(AuditFold, 1)
    return mark.seq if mark is not None else 0
