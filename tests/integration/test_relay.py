"""Two relays at once publish each outbox row exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from sqlalchemy import func, select

from hub.core.schemas import OrderIn
from hub.db.engine import unit_of_work
from hub.db.models import OutboxMessage
from hub.services.intake import accept_order
from tests import support
from tests.factories import order_payload


def test_two_relays_running_at_once_publish_every_row_once() -> None:
    orders = 300
    with unit_of_work() as session:
        for _ in range(orders):
            accept_order(
                session,
                OrderIn.model_validate(order_payload()),
                idempotency_key=None,
                sender="tests",
            )

    relays = [
        subprocess.Popen(
            [sys.executable, "-m", "hub", "relay"],
            env={**os.environ, "HUB_RELAY_BATCH_SIZE": "7"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    try:

        def all_sent() -> bool:
            with unit_of_work() as session:
                unsent = session.scalar(
                    select(func.count())
                    .select_from(OutboxMessage)
                    .where(OutboxMessage.sent_at.is_(None))
                )
            return unsent == 0

        support.wait_for(all_sent, timeout=60, what="both relays to drain the outbox")
    finally:
        for relay in relays:
            relay.send_signal(signal.SIGTERM)
        errors = [relay.communicate(timeout=10)[1].decode() for relay in relays]

    assert all(relay.returncode == 0 for relay in relays), errors
    inventory_queue = support.work_queue_names()[0]
    support.wait_for(
        lambda: support.queue_depth(inventory_queue) == orders,
        timeout=5,
        what=f"{orders} messages in {inventory_queue}",
    )
    with unit_of_work() as session:
        attempts = session.scalars(select(OutboxMessage.publish_attempts)).all()
    assert set(attempts) == {1}, "no row was published by both relays"
