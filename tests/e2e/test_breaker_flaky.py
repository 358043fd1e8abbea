"""The breaker against systems that half work, and against one that is down.

A half-working system must get its full useful rate (retries finish every order), and a dead
one only a trickle of calls. Each half-working case drains 200 orders after a healthy run of
the same size and prints the ratio of their rates; what it asserts is that every order
completes exactly once and that the breaker neither opened nor held a step back. Every failed
call costs about what a successful one does, so a system failing the first call of each
request (five runs of a step per order instead of three) drains at 0.6 of the healthy rate at
best; `make bench` measures it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection

from sqlalchemy import text

from hub.db.engine import get_engine
from hub.settings import get_settings
from tests.e2e.conftest import Stack
from tests.e2e.test_failures import hub
from tests.e2e.test_flow import assert_exactly_once, post_orders, wait_completed

ORDERS = 200


def drain_rate(stack: Stack, *, orders: int = ORDERS) -> tuple[float, list[str]]:
    """Orders per second from the first post to the last completion."""
    started = time.monotonic()
    order_ids = post_orders(stack, orders)
    wait_completed(order_ids, timeout=240)
    return orders / (time.monotonic() - started), order_ids


def held_back_or_opened() -> tuple[int, int]:
    """Steps the breakers held back, and how often they opened, since the tables were emptied."""
    with get_engine().connect() as connection:
        rows = connection.execute(
            text(
                "SELECT event_type, count(*) FROM integration_events"
                " WHERE event_type IN ('step.deferred', 'breaker.opened') GROUP BY event_type"
            )
        )
        counts = {str(kind): int(n) for kind, n in rows}
    return counts.get("step.deferred", 0), counts.get("breaker.opened", 0)


def retries_by_step() -> dict[str, tuple[int, int]]:
    """Retries scheduled so far by step: all of them, and those whose system sent a
    Retry-After the hub read."""
    with get_engine().connect() as connection:
        rows = connection.execute(
            text(
                "SELECT step, count(*), count(detail->>'retry_after_s') FROM integration_events"
                " WHERE event_type = 'step.retry_scheduled' GROUP BY step"
            )
        )
        return {str(step): (int(n), int(with_after)) for step, n, with_after in rows}


def compare_with_healthy(
    stack: Stack,
    break_systems: Callable[[], None],
    *,
    least_retries: dict[str, int],
    retry_after_read: Collection[str] = (),
) -> None:
    """Every order of a half-working run completes once, and no breaker stands in its way.

    First the faults are proven to have bitten: at least ``least_retries[step]`` retries of each
    broken step, and for the steps in ``retry_after_read`` every retry carries the Retry-After
    the system sent. The drain rate against the healthy run's is printed; the target on it
    (>= 0.5) is a figure of `make bench` ("ERP failing half its calls"), not a timed assertion.
    """
    healthy, healthy_ids = drain_rate(stack)
    assert_exactly_once(stack, healthy_ids)
    before = held_back_or_opened()
    retries_before = retries_by_step()

    break_systems()
    flaky, flaky_ids = drain_rate(stack)
    stack.sandbox.clear_faults()

    retries_after = retries_by_step()
    for step, least in least_retries.items():
        all_after, read_after = retries_after.get(step, (0, 0))
        all_before, read_before = retries_before.get(step, (0, 0))
        n, with_after = all_after - all_before, read_after - read_before
        assert n >= least, f"the faults did not bite: {n} retries of {step}, at least {least}"
        if step in retry_after_read:
            assert with_after == n, f"{n - with_after} retries of {step} ignored its Retry-After"
    assert_exactly_once(stack, flaky_ids)
    print(f"healthy {healthy:.1f}/s, half-working {flaky:.1f}/s, ratio {flaky / healthy:.2f}")
    assert held_back_or_opened() == before, "the breaker held back a half-working system"


def test_systems_failing_the_first_call_of_every_key_drain_without_the_breaker_holding_them(
    stack: Stack,
) -> None:
    def first_calls_fail() -> None:
        # The ERP behind a proxy answering an HTML 503 with an HTTP-date Retry-After; the
        # warehouse dropping the connection. Every retry goes through.
        stack.sandbox.set_faults(
            "erp",
            first_call_fails=True,
            status=503,
            body="html",
            retry_after=1,
            retry_after_date=True,
        )
        stack.sandbox.set_faults("warehouse", first_call_fails=True, body="reset")

    # The first call of every order's inventory and fulfillment step fails: one retry each.
    compare_with_healthy(
        stack,
        first_calls_fail,
        least_retries={"inventory": ORDERS, "fulfillment": ORDERS},
        retry_after_read={"inventory"},
    )


def test_a_system_failing_forty_percent_of_its_calls_drains_without_the_breaker_holding_it(
    stack: Stack,
) -> None:
    # 40 % of calls fail: about 0.67 retries per order; a tenth of that is a fault that bit.
    compare_with_healthy(
        stack,
        lambda: stack.sandbox.set_faults("erp", error_rate=0.4, status=503),
        least_retries={"inventory": ORDERS // 10},
    )


def test_a_system_down_for_thirty_seconds_gets_a_trickle_of_calls_and_every_order_after(
    stack: Stack,
) -> None:
    policy = get_settings().breaker
    erp = stack.sandbox.control("erp")
    calls_before = erp.ledger()["calls"]
    erp.set_faults(down=True)
    outage_started = time.monotonic()
    order_ids: list[str] = []
    while time.monotonic() - outage_started < 30:  # a stream of orders through the outage
        order_ids += post_orders(stack, 3)
        time.sleep(0.5)
    calls_during = erp.ledger()["calls"] - calls_before
    outage = time.monotonic() - outage_started
    erp.clear_faults()

    wait_completed(order_ids, timeout=180)
    assert_exactly_once(stack, order_ids)
    # Before it opens: the first calls of the orders arriving until `min_retry_failures` retries
    # have failed (retries come a second or two after their first call: at 6 orders a second,
    # about 20 orders) with those retries, and the calls in flight on the 4 pool processes;
    # then at most one round of probes per rest.
    rounds = int(outage / policy.cooldown) + 1
    bound = 40 + 4 + rounds * policy.half_open_calls
    print(f"{calls_during} ERP calls during a {outage:.0f} s outage with {len(order_ids)} orders")
    assert calls_during <= bound, f"{calls_during} ERP calls during the outage, bound {bound}"
    assert calls_during < len(order_ids) / 2
    # The breaker opened, rested, probed and closed, each move audited; hub breakers shows it.
    with get_engine().connect() as connection:
        moves = connection.execute(
            text(
                "SELECT event_type FROM integration_events WHERE event_type LIKE 'breaker.%' "
                "ORDER BY seq"
            )
        ).scalars()
        breaker_events = list(moves)
    assert breaker_events[0] == "breaker.opened" and breaker_events[-1] == "breaker.closed"
    assert "breaker.half_open" in breaker_events
    shown = hub("breakers")
    assert "erp" in shown.stdout and "closed" in shown.stdout
