"""What the status page knows that the failures page must not hide: systems whose breaker is
not closed, and the orders waiting for them.

During an outage the failures page lists only what has given up (failure records); the orders
held back by an open breaker have none. Without this, an operator saw 17 permanent failures
and no sign that 43 orders were waiting on a system that was down, nor that a replay of its
failures would wait behind the same breaker.
"""

from __future__ import annotations

from dataclasses import dataclass

from hub.core.statuses import OrderStatus
from hub.entrypoints.ui.status_page import breaker_rows
from hub.observability.health import ServiceDown
from hub.observability.snapshot.database import read_database
from hub.observability.snapshot.facts import Breaker, SystemLimit
from hub.settings import Settings


@dataclass(frozen=True)
class Outage:
    systems: list[tuple[str, Breaker]]  # each system whose breaker is open or half-open
    under_way: int  # orders received or processing: not failed, not done
    cooling: dict[str, SystemLimit]  # each system pausing after a 429


def read_outage(settings: Settings) -> Outage | None:
    """The outage in force, None when every breaker is closed and no system is cooling after a
    429 (or the database cannot say)."""
    if settings.trial:  # trial mode has no breakers table to read
        return None
    facts = read_database(settings)
    if isinstance(facts, ServiceDown):
        return None
    systems = [(name, row) for name, row in breaker_rows(facts) if row.state != "closed"]
    cooling = {name: limit for name, limit in facts.limits.items() if limit.cooling}
    if not systems and not cooling:
        return None
    waiting = (OrderStatus.RECEIVED, OrderStatus.PROCESSING)
    under_way = sum(facts.orders_by_status.get(status, 0) for status in waiting)
    return Outage(systems, under_way, cooling)
