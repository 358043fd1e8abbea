"""The open failures by cause: one row per group, with its count, first and last seen, a
sample, and its orders (what ``hub failures groups`` and the failures page show first).

Groups are computed when asked, from the open failures' rows (hub.core.failure_groups says
what a group is); nothing is stored, so no migration, and a failure's group cannot go stale.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from hub.core.failure_groups import GroupKey
from hub.db.models import Failure
from hub.services.replay import MAX_BULK, FailureFilter, failures_query, find_failures


@dataclass(frozen=True)
class FailureGroup:
    group_id: str
    key: GroupKey
    count: int
    first_seen: datetime
    last_seen: datetime
    # The newest failure of the group, as it was recorded (unmasked).
    sample: Failure
    # Oldest failure first.
    order_ids: tuple[uuid.UUID, ...]


def group_failures(failures: list[Failure]) -> list[FailureGroup]:
    """Failures (oldest first) by group, the largest group first, then the most recent."""
    members: dict[GroupKey, list[Failure]] = {}
    for failure in failures:
        key = GroupKey.of(
            step=failure.step,
            kind=failure.error_kind,
            code=failure.error_code,
            message=failure.message,
        )
        members.setdefault(key, []).append(failure)
    groups = [
        FailureGroup(
            group_id=key.group_id,
            key=key,
            count=len(rows),
            first_seen=min(row.first_failed_at for row in rows),
            last_seen=max(row.last_failed_at for row in rows),
            sample=max(rows, key=lambda row: row.last_failed_at),
            order_ids=tuple(row.order_id for row in rows),
        )
        for key, rows in members.items()
    ]
    return sorted(groups, key=lambda g: (-g.count, -g.last_seen.timestamp(), g.group_id))


def open_groups(session: Session, criteria: FailureFilter | None = None) -> list[FailureGroup]:
    """The groups of the failures ``criteria`` selects (every open failure by default)."""
    criteria = criteria or FailureFilter()
    return group_failures(list(session.scalars(failures_query(criteria).limit(MAX_BULK))))


def find_group(session: Session, group_id: str) -> FailureGroup | None:
    """One group of the open failures, or None when none of its failures is open any more."""
    found = group_failures(find_failures(session, FailureFilter(group=group_id), limit=MAX_BULK))
    return found[0] if found else None
