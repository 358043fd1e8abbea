"""What the hub looks like right now, read from PostgreSQL and RabbitMQ in one go.

``/metrics`` and ``hub status`` both render a ``Snapshot``. Workers are separate processes, so
the numbers come from where the truth is kept (the hub's tables, the broker's queues), not from
counters in this process. A service that does not answer makes its part ``ServiceDown``; the
rest of the snapshot is still taken.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from hub.observability.health import ServiceDown

# Upper bounds (seconds) of the step latency buckets; the last bucket is +Inf.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True)
class Latency:
    """Durations of one step's successful downstream calls: cumulative counts per bucket."""

    cumulative: tuple[int, ...]  # one per LATENCY_BUCKETS bound, then +Inf (== count)
    count: int
    sum_seconds: float


@dataclass(frozen=True)
class Breaker:
    """One system's breaker as the ``breakers`` table holds it (a system with no row is closed)."""

    state: str  # closed | open | half_open
    opened_at: datetime | None = None
    # While open: no call before this moment. While half-open: the probe's lease ends here.
    retry_at: datetime | None = None


@dataclass(frozen=True)
class DatabaseFacts:
    orders_by_status: dict[str, int] = field(default_factory=dict)
    # Audit rows after the fold's mark (by seq, so an upper bound), and how many of them this
    # snapshot left out of its counters (it reads a bounded range past the mark): the counters
    # below are short by that many rows until the relay folds them.
    audit_not_folded: int = 0
    audit_not_counted: int = 0
    # Counted from audit events, so they only ever grow (an order failed twice counts twice).
    orders_received: int = 0
    orders_completed: int = 0
    orders_failed: int = 0
    # Chains the sweeper re-drove (hub.services.sweeper).
    orders_redriven: int = 0
    retries_by_step: dict[str, int] = field(default_factory=dict)
    latency_by_step: dict[str, Latency] = field(default_factory=dict)
    outbox_backlog: int = 0
    outbox_oldest_age_seconds: float = 0.0
    # (step, error kind) -> open failure records
    failures_open: dict[tuple[str, str], int] = field(default_factory=dict)
    breakers: dict[str, str] = field(default_factory=dict)
    # The same breakers with their times, for the status page (system -> its row).
    breaker_rows: dict[str, Breaker] = field(default_factory=dict)
    # What each breaker is deciding on: its window's calls and failures, steps held back.
    breaker_windows: dict[str, BreakerWindow] = field(default_factory=dict)
    # Each system's shared limits (hub.db.limits), for systems that have any state yet.
    limits: dict[str, SystemLimit] = field(default_factory=dict)


@dataclass(frozen=True)
class SystemLimit:
    """One system's shared limits now: a 429's cooling, the rate in force, slots and waiters."""

    # A 429 with Retry-After: no worker calls the system before this moment.
    cooling_until: datetime | None = None
    cooling: bool = False
    # Calls per second allowed now (the configured rate, or the adaptive one after 429s);
    # None: no rate limits the system.
    rate: float | None = None
    in_flight: int = 0
    waiting: int = 0
    # 429s the system answered, counted since its row was made.
    throttled: int = 0

    @property
    def active(self) -> bool:
        """Anything an operator should see: cooling, slowed, or steps held for a slot."""
        return self.cooling or self.rate is not None or self.in_flight > 0 or self.waiting > 0


@dataclass(frozen=True)
class BreakerWindow:
    # Calls and failures counted since the window's first failure (0 while the system answers
    # well, or once the window has expired).
    calls: int = 0
    failures: int = 0
    # Steps held back in the broker since the breaker last opened.
    held: int = 0

    @property
    def failure_rate(self) -> float:
        return self.failures / self.calls if self.calls else 0.0


@dataclass(frozen=True)
class BrokerFacts:
    # None: the queue does not exist (nothing declared it yet).
    work_queues: dict[str, int | None] = field(default_factory=dict)
    failure_queue: int | None = None
    # Celery's native delayed delivery queues (``celery_delayed_*``) are shared by every
    # hub on the vhost: their total is retries waiting, ours and any other hub's.
    delayed_messages: int = 0
    delayed_queues: int = 0


@dataclass(frozen=True)
class Snapshot:
    taken_at: datetime
    queue_prefix: str
    database: DatabaseFacts | ServiceDown
    broker: BrokerFacts | ServiceDown
    # Node names of workers consuming our queues; None when not asked (``/metrics``).
    workers: tuple[str, ...] | ServiceDown | None = None
