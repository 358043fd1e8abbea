"""``hub status`` draws one screen from a snapshot and says plainly which service is down."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from rich.console import Console

from hub.entrypoints.cli.status import any_down, render, watch
from hub.observability.health import ServiceDown
from hub.observability.snapshot.facts import BrokerFacts, DatabaseFacts, Snapshot

HEALTHY = Snapshot(
    taken_at=datetime(2026, 1, 1, 12, 0, tzinfo=UTC),
    queue_prefix="hub",
    database=DatabaseFacts(
        orders_by_status={"completed": 40, "processing": 2, "failed": 1},
        outbox_backlog=3,
        outbox_oldest_age_seconds=7.25,
        failures_open={("inventory", "exhausted"): 1},
        breakers={"erp": "open"},
    ),
    broker=BrokerFacts(
        work_queues={"hub.inventory": 12, "hub.fulfillment": 0, "hub.invoice": None},
        failure_queue=0,
        delayed_messages=5,
        delayed_queues=28,
    ),
    workers=("worker1@host", "worker2@host"),
)


def screen(snapshot: Snapshot) -> str:
    console = Console(record=True, width=140, color_system=None)
    console.print(render(snapshot))
    return console.export_text()


def test_the_screen_shows_orders_outbox_queues_failures_breakers_and_workers() -> None:
    text = screen(HEALTHY)

    assert "completed" in text and "40" in text
    assert "Outbox: 3 unsent, the oldest 7.2s old" in text
    assert "hub.inventory" in text and "12" in text
    assert "missing" in text, "a queue nobody declared is shown as such"
    assert "celery_delayed_* (28, whole vhost)" in text
    assert "exhausted" in text
    assert "erp" in text and "open" in text
    assert "Workers online: 2 (worker1@host, worker2@host)" in text
    assert not any_down(HEALTHY)


def test_a_service_that_is_down_gets_a_line_naming_it_instead_of_its_tables() -> None:
    rabbit = ServiceDown(
        "RabbitMQ", "amqp://guest:**@127.0.0.1:5999//", "Connection refused", "start it with: x"
    )
    down = Snapshot(
        taken_at=HEALTHY.taken_at,
        queue_prefix="hub",
        database=HEALTHY.database,
        broker=rabbit,
        workers=rabbit,
    )

    text = screen(down)

    assert "RabbitMQ unreachable at amqp://guest:**@127.0.0.1:5999//: Connection refused" in text
    assert "start it with: x" in text
    assert "RabbitMQ queues" not in text
    assert "Workers: unknown (RabbitMQ unreachable" in text
    assert "Orders" in text, "what PostgreSQL knows is still shown"
    assert any_down(down)


def test_watch_redraws_until_stopped() -> None:
    stop = threading.Event()
    taken: list[Snapshot] = []

    def take() -> Snapshot:
        taken.append(HEALTHY)
        if len(taken) == 3:
            stop.set()
        return HEALTHY

    console = Console(record=True, width=140, color_system=None)
    redraws = watch(take, console=console, interval=0.01, stop=stop)

    assert redraws == 3
    assert "Workers online: 2" in console.export_text()
