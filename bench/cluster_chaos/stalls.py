"""How long intake, publishing and consuming each stood still around a fault.

Read after the run from the hub's own timestamps: orders stored (intake), outbox rows marked
sent (publishing, by the intake's fast path or the relay) and steps succeeded (consuming). A
stall is the longest stretch without one of them that overlaps the fault's window; under a
steady load of several orders a second, a quiet stretch is a stall and not a lull.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from hub.db import audit
from hub.db.engine import unit_of_work
from hub.db.models import IntegrationEvent, Order, OutboxMessage

ACTIVITIES = ("intake", "publishing", "consuming")


@dataclass(frozen=True)
class Window:
    label: str
    start: float  # epoch seconds: the fault
    end: float  # epoch seconds: the end of its window (the next fault, or the end of the load)


def longest_gap(times: list[float], start: float, end: float) -> float:
    """Longest stretch between two consecutive ``times`` (sorted) that overlaps [start, end].

    The stretch from the last event before ``start`` counts (the fault may hit mid-gap); one
    running past ``end`` is cut there (the window ended, whatever came after).
    """
    before = [t for t in times if t < start]
    inside = [t for t in times if start <= t <= end]
    points = ([before[-1]] if before else [start]) + inside + [end]
    best = 0.0
    for left, right in itertools.pairwise(points):
        if right < start:
            continue
        best = max(best, min(right, end) - left)
    return best


def _epoch(values: list[datetime | None]) -> list[float]:
    return sorted(v.timestamp() for v in values if v is not None)


def activity_times() -> dict[str, list[float]]:
    """Epoch timestamps of each activity over the whole run."""
    with unit_of_work() as session:
        intake = list(session.scalars(select(Order.created_at)))
        published = list(session.scalars(select(OutboxMessage.sent_at)))
        consumed = list(
            session.scalars(
                select(IntegrationEvent.created_at).where(
                    IntegrationEvent.event_type == audit.STEP_SUCCEEDED
                )
            )
        )
    return {
        "intake": _epoch(list(intake)),
        "publishing": _epoch(list(published)),
        "consuming": _epoch(list(consumed)),
    }


def stalls(windows: list[Window], times: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """For each window, the longest stall of each activity (seconds, rounded to 0.1)."""
    return {
        window.label: {
            activity: round(longest_gap(times[activity], window.start, window.end), 1)
            for activity in ACTIVITIES
        }
        for window in windows
    }
