"""A purged work queue mid-chain: the sweeper re-drives every stranded order, and each
downstream effect is still applied exactly once (the sandbox ledgers are the judge)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from bench import records
from bench.load import post_until_accepted
from hub.db import audit
from hub.db.engine import get_engine
from hub.demo.processes import Supervisor
from hub.services import reconcile
from hub.settings import get_settings
from tests import support
from tests.e2e.conftest import LOGS, Stack
from tests.e2e.test_cancellation import assert_compensated_once, cancel
from tests.e2e.test_failures import post_one, wait_failed
from tests.factories import order_payload

# More orders than the two workers' 64 threads hold at once, so a backlog builds in the queue.
ORDERS = 120
SWEEP_AFTER = 3
SWEEP_INTERVAL = 1


@pytest.fixture
def sweeping_relay(stack: Stack) -> Iterator[None]:
    """A second relay whose sweeper acts within seconds (the stack's waits the default
    five minutes); two relays at once is how production runs anyway."""
    supervisor = Supervisor(
        env={"HUB_SWEEP_AFTER": str(SWEEP_AFTER), "HUB_SWEEP_INTERVAL": str(SWEEP_INTERVAL)},
        log_dir=LOGS,
    )
    supervisor.hub("relay-sweeper", "relay")
    try:
        yield
    finally:
        supervisor.stop()


def redriven_orders() -> set[str]:
    with get_engine().connect() as connection:
        rows = connection.execute(
            text("SELECT DISTINCT order_id::text FROM integration_events WHERE event_type = :t"),
            {"t": audit.CHAIN_REDRIVEN},
        )
        return {row[0] for row in rows}


def purge(queue: str) -> int:
    with support.broker_connection() as connection:
        return int(connection.default_channel.queue_purge(queue) or 0)


def test_orders_of_a_purged_queue_all_complete_exactly_once(
    stack: Stack, sweeping_relay: None
) -> None:
    # Given 120 orders piling up at a slow warehouse,
    stack.sandbox.set_faults("warehouse", latency_ms=5000)
    fulfillment = support.work_queue_names()[1]
    accepted = [
        post_until_accepted(
            f"{stack.api_url}/orders", order_payload(), headers=stack.headers, give_up_after=30
        )
        for _ in range(ORDERS)
    ]
    order_ids = [order_id for order_id in accepted if order_id is not None]
    assert len(order_ids) == ORDERS
    support.wait_for(
        lambda: support.queue_depth(fulfillment) >= 20,
        timeout=180,
        what="a backlog in the fulfillment queue",
    )

    # when the fulfillment queue is purged under them (the warehouse then recovers),
    lost = purge(fulfillment)
    purged_at = time.monotonic()
    stack.sandbox.clear_faults()

    # then every order still completes, within the sweeper's bound,
    support.wait_for(
        lambda: set(support.statuses(order_ids).values()) == {"completed"},
        timeout=180,
        what=f"{ORDERS} orders to complete after {lost} messages were purged",
    )
    healed_in = time.monotonic() - purged_at
    # (workers may take a few between the look at the depth and the purge)
    assert lost >= 15, f"only {lost} messages were purged: not the backlog this test is about"
    assert len(redriven_orders() & set(order_ids)) >= lost, "each purged order was re-driven"
    # At rest means the relay has marked what it published (a re-drive of an order whose
    # message a worker took just before the purge may be sent after the order completed);
    support.wait_for(
        lambda: records.unsent_outbox() == 0, timeout=60, what="the relay to send the outbox"
    )
    # and each step's effect is applied once downstream: no double reservation, shipment
    # or invoice, and no effect missing.
    found, counted = reconcile.check(get_settings(), only=set(order_ids), at_rest=True, grace=0)
    assert found == [], found
    assert counted["effects"] == ORDERS * 3
    print(f"{lost} purged messages healed in {healed_in:.1f}s (sweep after {SWEEP_AFTER}s)")


def test_compensations_lost_in_a_purged_queue_are_redriven_and_each_undone_once(
    stack: Stack, sweeping_relay: None
) -> None:
    # Given three orders refused for good at the warehouse (their reservations held),
    ship_to = {**order_payload()["ship_to"], "postal_code": "00013"}  # undeliverable (sandbox)
    order_ids = [post_one(stack, ship_to=ship_to) for _ in range(3)]
    for order_id in order_ids:
        wait_failed(order_id)
    # when they are cancelled with no worker up, and their compensations' messages are purged,
    with stack.workers_with(names=()):
        for order_id in order_ids:
            assert cancel(stack, order_id).json()["status"] == "cancelling"
        last = support.work_queue_names()[-1]
        support.wait_for(
            lambda: support.queue_depth(last) >= len(order_ids),
            timeout=30,
            what="the compensations to be queued",
        )
        lost = sum(purge(queue) for queue in support.work_queue_names())
    assert lost >= len(order_ids)

    # then the sweeper re-drives them, and each reservation is released exactly once.
    support.wait_for(
        lambda: set(support.statuses(order_ids).values()) == {"cancelled"},
        timeout=90,
        what="the cancelled orders' compensations to be re-driven",
    )
    assert set(order_ids) <= redriven_orders()
    assert assert_compensated_once(stack, order_ids) == len(order_ids)
    found, _ = reconcile.check(get_settings(), only=set(order_ids), at_rest=True, grace=0)
    assert found == [], found
