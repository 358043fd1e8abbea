"""The status page's first line says in words whether all is well (a healthy page had none)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hub.entrypoints.ui.rendering import templates
from hub.entrypoints.ui.status_page import headline, live_context
from hub.observability.health import ServiceDown
from hub.observability.snapshot.facts import Breaker, BrokerFacts, DatabaseFacts, Snapshot

RABBIT_DOWN = ServiceDown("RabbitMQ", "amqp://x", "refused", "start it")
CLOSED = [("erp", Breaker("closed")), ("warehouse", Breaker("closed"))]
WORKERS = ("worker-1@h", "worker-2@h")


@pytest.mark.parametrize(
    ("down", "breakers", "workers", "failures", "level", "words"),
    [
        ([], CLOSED, WORKERS, 0, "well", "All is well: PostgreSQL and RabbitMQ answer, 2 worker"),
        ([], CLOSED, WORKERS, 3, "attention", "3 open failures wait for a decision"),
        ([], CLOSED, WORKERS, 1, "attention", "1 open failure waits for a decision"),
        ([], [("erp", Breaker("open"))], WORKERS, 0, "trouble", "erp looks down (breaker open)"),
        ([], [("erp", Breaker("half_open"))], WORKERS, 0, "trouble", "breaker half-open"),
        ([], CLOSED, (), 0, "trouble", "no worker answers"),
        ([RABBIT_DOWN], CLOSED, RABBIT_DOWN, 0, "trouble", "Not well: RabbitMQ is down."),
    ],
)
def test_headline(
    down: list[ServiceDown],
    breakers: list[tuple[str, Breaker]],
    workers: tuple[str, ...] | ServiceDown,
    failures: int,
    level: str,
    words: str,
) -> None:
    said_level, sentence = headline(down, breakers, workers, failures)
    assert said_level == level
    assert words in sentence


def test_a_healthy_page_says_all_is_well() -> None:
    snapshot = Snapshot(
        taken_at=datetime(2026, 1, 1, 12, 0, tzinfo=UTC),
        queue_prefix="hub",
        database=DatabaseFacts(orders_by_status={"completed": 40}),
        broker=BrokerFacts(work_queues={"hub.inventory": 0}, failure_queue=0),
        workers=WORKERS,
    )
    html = templates().get_template("_status_live.html").render(**live_context(snapshot))
    assert '<p class="headline well" id="headline">All is well:' in html
