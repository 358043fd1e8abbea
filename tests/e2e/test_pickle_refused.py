"""A pickled message in a work queue is refused and dead-lettered, never unpickled or executed.

Unpickling runs code of the sender's choosing, so the payload here would leave a marker
directory behind if any worker ever deserialized it.
"""

from __future__ import annotations

import os
import pickle
import uuid
from pathlib import Path
from typing import Any

import pytest
from kombu import Producer
from sqlalchemy import text

from hub.broker.topology import Topology
from hub.db.engine import get_engine
from hub.settings import get_settings
from tests import support
from tests.e2e.conftest import Stack


class Payload:
    """Unpickling this calls os.mkdir(marker): proof of execution, harmless otherwise."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (str(self.marker),))


def last_seq() -> int:
    with get_engine().connect() as connection:
        return int(
            connection.execute(
                text("SELECT coalesce(max(seq), 0) FROM integration_events")
            ).scalar_one()
        )


def events_since(seq: int) -> list[dict[str, Any]]:
    with get_engine().connect() as connection:
        rows = connection.execute(
            text("SELECT event_type, detail FROM integration_events WHERE seq > :seq ORDER BY seq"),
            {"seq": seq},
        )
        return [dict(row._mapping) for row in rows]


def inject(body: bytes, *, task_header: bool) -> str:
    """Publish a pickled message into the inventory work queue, as an attacker on the broker."""
    topology = Topology(get_settings().queue_prefix)
    task_id = str(uuid.uuid4())
    headers: dict[str, Any] = {}
    if task_header:  # Celery's protocol 2: the task name travels in the headers
        headers = {
            "lang": "py",
            "task": "hub.step.inventory",
            "id": task_id,
            "root_id": task_id,
            "parent_id": None,
            "group": None,
            "retries": 0,
            "eta": None,
            "expires": None,
            "argsrepr": "(...)",
            "kwargsrepr": "{}",
        }
    with support.broker_connection() as connection:
        Producer(connection).publish(
            body,
            exchange=topology.exchange,
            routing_key=topology.routing_key("inventory"),
            content_type="application/x-python-serialize",
            content_encoding="binary",
            headers=headers,
            correlation_id=task_id,
            delivery_mode=2,
        )
    return task_id


@pytest.mark.parametrize("task_header", [True, False], ids=["protocol-2", "no-task-header"])
def test_a_pickled_message_is_dead_lettered_and_never_executed(
    stack: Stack, tmp_path: Path, task_header: bool
) -> None:
    marker = tmp_path / "unpickled"
    order_id = str(uuid.uuid4())
    body = pickle.dumps(((order_id, Payload(marker)), {}, {}), protocol=2)
    if not task_header:  # protocol 1 kept the task name in the (pickled) body
        body = pickle.dumps(
            {"task": "hub.step.inventory", "id": order_id, "args": [Payload(marker)]}
        )
    start = last_seq()

    inject(body, task_header=task_header)

    def dead_lettered() -> list[dict[str, Any]]:
        return [e for e in events_since(start) if e["event_type"] == "dead_letter.unknown"]

    support.wait_for(lambda: bool(dead_lettered()), timeout=30, what="the dead-letter record")
    [record] = dead_lettered()
    assert record["detail"]["content_type"] == "application/x-python-serialize"
    assert record["detail"]["reason"] == "rejected"
    assert not marker.exists(), "a worker unpickled the message"
    assert not [e for e in events_since(start) if e["event_type"].startswith("step.")]
    for queue in support.work_queue_names():
        assert support.queue_depth(queue) == 0
