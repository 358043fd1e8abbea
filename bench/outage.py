"""Figure c: a steady stream of orders while the ERP is down for a window, and the recovery.

Sampled twice a second: orders accepted, completed, failed, and the ERP's call counter. The
drain time is measured from the ERP's return until every order accepted before that moment
has completed; loss and double effects are counted from the hub's rows and the ERP's ledger.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench import records, state
from bench.auth import sender_headers
from bench.load import Stream
from bench.stack import Stack
from hub.db import audit
from hub.settings import get_settings

SAMPLE_EVERY = 0.5


@dataclass(frozen=True)
class OutageParams:
    rate: float  # orders per second, below the hub's throughput so the backlog is the outage's
    before: float  # seconds of normal running before the ERP goes down
    outage: float  # seconds the ERP is down
    after: float  # seconds the stream goes on after the ERP is back
    drain_timeout: float = 300


@dataclass
class Timeline:
    t: list[float] = field(default_factory=list)
    accepted: list[int] = field(default_factory=list)
    completed: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    erp_calls: list[int] = field(default_factory=list)

    def to_json(self) -> dict[str, list[float] | list[int]]:
        return {
            "t": self.t,
            "accepted": self.accepted,
            "completed": self.completed,
            "failed": self.failed,
            "erp_calls": self.erp_calls,
        }


def _sample(stream: Stream, line: Timeline, t0: float, stack: Stack) -> None:
    counts = records.status_counts()
    line.t.append(round(time.monotonic() - t0, 2))
    line.accepted.append(stream.accepted_count())
    line.completed.append(counts["completed"])
    line.failed.append(counts["failed"])
    line.erp_calls.append(int(stack.sandbox.ledger("erp")["calls"]))


def _doubled_and_missing(stack: Stack, order_ids: set[str]) -> tuple[int, int]:
    effects = stack.sandbox.effects_per_key()
    doubled = missing = 0
    for step in get_settings().pipeline.steps:
        for order_id in order_ids:
            n = effects[step][f"{order_id}:{step}"]
            doubled += n > 1
            missing += n == 0
    return doubled, missing


def measure(stack: Stack, params: OutageParams) -> dict[str, Any]:
    state.truncate_all()
    state.purge_queues()
    stack.sandbox.clear_faults()
    stream = Stream(f"{stack.api_url}/orders", params.rate, sender_headers())
    line = Timeline()
    calls_before = calls_at_return = 0
    t0 = time.monotonic()
    down_at = t0 + params.before
    back_at = down_at + params.outage
    stream_ends = back_at + params.after
    phase = "before"
    returned_accepted: set[str] = set()
    waiting_at_return = 0
    stream.start()
    drained_at: float | None = None
    mostly_drained_at: float | None = None
    deadline = stream_ends + params.drain_timeout
    try:
        while time.monotonic() < deadline:
            now = time.monotonic()
            if phase == "before" and now >= down_at:
                calls_before = int(stack.sandbox.ledger("erp")["calls"])
                stack.sandbox.set_faults("erp", down=True)
                phase = "down"
            elif phase == "down" and now >= back_at:
                stack.sandbox.clear_faults()
                calls_at_return = int(stack.sandbox.ledger("erp")["calls"])
                returned_accepted = stream.accepted_ids()
                waiting_at_return = sum(
                    1
                    for status in records.statuses_of(returned_accepted).values()
                    if status not in ("completed", "failed")
                )
                phase = "back"
            elif phase == "back" and now >= stream_ends:
                stream.stop()
                phase = "ended"
            _sample(stream, line, t0, stack)
            if phase in ("back", "ended") and drained_at is None:
                found = records.statuses_of(returned_accepted)
                left = sum(1 for s in found.values() if s not in ("completed", "failed"))
                if mostly_drained_at is None and left <= 0.05 * waiting_at_return:
                    mostly_drained_at = time.monotonic()
                if left == 0:
                    drained_at = time.monotonic()
            if phase == "ended":
                counts = records.status_counts()
                if counts["completed"] + counts["failed"] >= stream.accepted_count():
                    break
            time.sleep(SAMPLE_EVERY)
    finally:
        if phase != "ended":
            stream.stop()
        stack.sandbox.clear_faults()
    _sample(stream, line, t0, stack)
    order_ids = stream.accepted_ids()
    found = records.statuses_of(order_ids)
    statuses = Counter(found.values())
    doubled, missing = _doubled_and_missing(
        stack, {o for o, status in found.items() if status == "completed"}
    )
    completed = statuses["completed"]
    lost = len(order_ids) - completed - statuses["failed"]
    arrived_during = sum(
        1 for _, accepted_at in stream.accepted.values() if down_at <= accepted_at < back_at
    )
    calls_during = calls_at_return - calls_before
    events = records.event_counts()
    return {
        "params": {
            "rate_per_s": params.rate,
            "before_s": params.before,
            "outage_s": params.outage,
            "after_s": params.after,
            "erp_fault": "down=true (503 at once)",
            "breaker_cooldown_s": stack.settings.breaker.cooldown,
            "breaker_half_open_calls": stack.settings.breaker.half_open_calls,
        },
        "orders_accepted": len(order_ids),
        "orders_completed": completed,
        "orders_failed": statuses["failed"],
        "orders_lost": lost,
        "effects_missing_for_completed": missing,
        "effects_applied_twice": doubled,
        "orders_arriving_during_outage": arrived_during,
        "erp_calls_during_outage": calls_during,
        "erp_calls_per_waiting_order": round(calls_during / max(1, waiting_at_return), 2),
        "waiting_orders_at_return": waiting_at_return,
        "breaker_opened": events[audit.BREAKER_OPENED],
        "drain_s": round(drained_at - back_at, 1) if drained_at is not None else None,
        "drain_95pct_s": (
            round(mostly_drained_at - back_at, 1) if mostly_drained_at is not None else None
        ),
        "timeline": line.to_json(),
        "outage_window_s": [round(down_at - t0, 2), round(back_at - t0, 2)],
    }
