"""Per-system limits on real PostgreSQL: slots with leases, waiters in order, a 429's cooling."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError

from hub.core.limits import SystemLimits, ThrottlePolicy, Wait
from hub.db import limits
from hub.db.engine import get_engine, unit_of_work
from hub.db.limits import Slot
from hub.db.models import IntegrationEvent
from hub.db.slot_wakes import SlotWakes
from hub.services.system_limits import SqlSystemLimiter
from tests import support

POLICY = ThrottlePolicy()
FOUR = SystemLimits(max_in_flight=4)


def take(holder: str, *, lease: float = 30.0, system_limits: SystemLimits = FOUR) -> Slot | Wait:
    with unit_of_work() as session:
        return limits.acquire(
            session, "erp", holder=holder, limits=system_limits, policy=POLICY, lease=lease
        )


def test_at_most_four_slots_are_held_however_many_workers_ask_at_once() -> None:
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda n: take(f"order-{n}:inventory"), range(16)))

    granted = [a for a in answers if isinstance(a, Slot)]
    assert len(granted) == 4
    assert all(isinstance(a, Wait) and a.seconds >= 1 for a in answers if a not in granted)


def test_a_released_slot_is_taken_by_the_step_that_waited_longest() -> None:
    held = [take(f"order-{n}:inventory") for n in range(4)]
    first = take("first:inventory")
    second = take("second:inventory")
    assert isinstance(first, Wait) and isinstance(second, Wait)
    # Both waiters due back now (their deferral passed).
    with get_engine().begin() as connection:
        connection.execute(text("UPDATE system_waiters SET due_at = now() - interval '1 s'"))
    slot = held[0]
    assert isinstance(slot, Slot)
    limits.release(get_engine(), slot, seconds=0.2)

    assert isinstance(take("newcomer:inventory"), Wait), "a newcomer must not jump the queue"
    assert isinstance(take("second:inventory"), Wait), "nor the second waiter"
    assert isinstance(take("first:inventory"), Slot)


def leases_lapsed() -> bool:
    with get_engine().connect() as connection:
        live = connection.execute(
            text("SELECT count(*) FROM system_slots WHERE expires_at > now()")
        ).scalar_one()
    return int(live) == 0


def test_a_dead_workers_slot_comes_back_when_its_lease_lapses() -> None:
    # Four calls whose workers were killed: nobody will ever release their slots.
    for n in range(4):
        assert isinstance(take(f"killed-{n}:inventory", lease=1.0), Slot)
    assert isinstance(take("alive:inventory"), Wait)

    # Once the leases (1 s) have lapsed by the database's clock, the living caller gets a slot.
    support.wait_for(leases_lapsed, timeout=30, what="the killed workers' leases to lapse")

    assert isinstance(take("alive:inventory"), Slot)
    with get_engine().connect() as connection:
        held = connection.execute(text("SELECT holder FROM system_slots")).scalars().all()
    assert held == ["alive:inventory"]


def test_a_429_with_retry_after_cools_the_system_for_everyone_with_one_audit_row() -> None:
    for _ in range(3):
        with unit_of_work() as session:
            limits.throttled(session, "erp", retry_after=3, limits=SystemLimits(), policy=POLICY)

    answer = take("any:inventory", system_limits=SystemLimits())
    assert isinstance(answer, Wait) and 3 <= answer.seconds <= 6
    assert answer.reason.startswith("cooling")
    with unit_of_work() as session:
        kinds = session.scalars(select(IntegrationEvent.event_type)).all()
        [view] = limits.views(session, lambda _: SystemLimits(), POLICY).values()
    assert kinds.count(limits.SYSTEM_COOLING) == 1
    assert view.cooling and view.throttled == 3
    halved = POLICY.start_rate * POLICY.decrease  # and grown back a little since
    assert view.rate_in_force is not None and halved <= view.rate_in_force < halved + 1


def test_the_limiter_port_records_a_deferred_step_and_never_keeps_a_slot() -> None:
    limiter = SqlSystemLimiter(
        get_engine(),
        limits_of=lambda _: SystemLimits(max_in_flight=1),
        policy=POLICY,
        lease_of=lambda _: 30.0,
    )
    slot = limiter.acquire("erp", holder="a:inventory")
    assert isinstance(slot, Slot)
    assert isinstance(limiter.acquire("erp", holder="b:inventory", step="inventory"), int)
    limiter.release(slot, seconds=0.1)

    with unit_of_work() as session:
        deferred = session.scalars(
            select(IntegrationEvent).where(IntegrationEvent.event_type == "step.deferred")
        ).all()
        [view] = limits.views(session, lambda _: SystemLimits(max_in_flight=1), POLICY).values()
    assert [event.detail["reason"] for event in deferred] == ["1 in flight"]
    assert view.in_flight == 0 and view.deferred == 1 and view.waiting == 1


def waiting_limiter(wakes: SlotWakes, *, slot_wait: float) -> SqlSystemLimiter:
    return SqlSystemLimiter(
        get_engine(),
        limits_of=lambda _: SystemLimits(max_in_flight=1),
        policy=ThrottlePolicy(slot_wait=slot_wait),
        lease_of=lambda _: 30.0,
        wakes=wakes,
    )


def waits_now(holder: str) -> bool:
    with get_engine().connect() as connection:
        due = connection.execute(
            text("SELECT due_at <= now() FROM system_waiters WHERE holder = :holder"),
            {"holder": holder},
        ).scalar_one_or_none()
    return bool(due)


def test_a_given_back_slot_wakes_a_waiter_of_every_worker_by_notice() -> None:
    wakes = SlotWakes(get_engine())
    limiter = waiting_limiter(wakes, slot_wait=10.0)
    held = limiter.acquire("erp", holder="a:inventory")
    assert isinstance(held, Slot)
    with wakes.waiting("erp", cap=1) as waiter:
        assert waiter is not None
        support.wait_for(lambda: wakes.listening, timeout=30, what="the listener to LISTEN")
        limiter.release(held, seconds=0.1)
        # Woken by the release's NOTIFY, not by the end of a sleep of 60 s.
        assert waiter.sleep(60.0), "no notice came for the given-back slot"


def test_a_step_waiting_in_its_thread_takes_the_slot_given_back_without_a_deferral() -> None:
    wakes = SlotWakes(get_engine())
    limiter = waiting_limiter(wakes, slot_wait=10.0)
    held = limiter.acquire("erp", holder="a:inventory")
    assert isinstance(held, Slot)
    with ThreadPoolExecutor(1) as pool:
        later = pool.submit(limiter.acquire, "erp", holder="b:inventory", step="inventory")
        support.wait_for(lambda: waits_now("b:inventory"), timeout=30, what="b to wait")
        # A newcomer finds b ahead of it, and (the cap of waiting threads reached) is deferred.
        assert isinstance(limiter.acquire("erp", holder="c:inventory", step="inventory"), int)
        limiter.release(held, seconds=0.1)
        slot = later.result(timeout=60)
    assert isinstance(slot, Slot)
    with unit_of_work() as session:
        deferred = session.scalars(
            select(IntegrationEvent.detail).where(IntegrationEvent.event_type == "step.deferred")
        ).all()
        [view] = limits.views(session, lambda _: SystemLimits(max_in_flight=1), POLICY).values()
    assert [d["reason"] for d in deferred] == ["1 in flight"]  # c's only
    assert view.in_flight == 1 and view.deferred == 1


def test_a_wait_that_times_out_is_deferred_in_the_broker_keeping_its_place() -> None:
    wakes = SlotWakes(get_engine())
    limiter = waiting_limiter(wakes, slot_wait=0.3)
    assert isinstance(limiter.acquire("erp", holder="a:inventory"), Slot)

    seconds = limiter.acquire("erp", holder="b:inventory", step="inventory")

    assert isinstance(seconds, int) and seconds >= 1
    with unit_of_work() as session:
        [view] = limits.views(session, lambda _: SystemLimits(max_in_flight=1), POLICY).values()
    assert view.deferred == 1 and view.waiting == 1
    assert not waits_now("b:inventory"), "a deferred step is due back later, not now"


def test_postgresql_lost_during_a_wait_fails_the_question_and_frees_the_place(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wakes = SlotWakes(get_engine())
    limiter = waiting_limiter(wakes, slot_wait=10.0)
    assert isinstance(limiter.acquire("erp", holder="a:inventory"), Slot)
    support.wait_for(lambda: wakes.listening, timeout=30, what="the listener to LISTEN")
    # The listener's connection ended by the server: it connects again by itself.
    with get_engine().begin() as connection:
        connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()"
            )
        )
    support.wait_for(lambda: not wakes.listening, timeout=30, what="the listener to notice")
    support.wait_for(lambda: wakes.listening, timeout=30, what="the listener to come back")

    asks = 0
    real = limits.acquire

    def away_on_second_ask(*args: Any, **kwargs: Any) -> Slot | Wait:
        nonlocal asks
        asks += 1
        if asks == 2:
            raise OperationalError("SELECT", {}, Exception("server closed the connection"))
        return real(*args, **kwargs)

    monkeypatch.setattr(limits, "acquire", away_on_second_ask)
    with pytest.raises(OperationalError):
        limiter.acquire("erp", holder="b:inventory", step="inventory")
    monkeypatch.setattr(limits, "acquire", real)

    # Its place among the waiting threads is free again: the next one may wait (and time out).
    with wakes.waiting("erp", cap=1) as waiter:
        assert waiter is not None
    with unit_of_work() as session:
        [view] = limits.views(session, lambda _: SystemLimits(max_in_flight=1), POLICY).values()
    assert view.in_flight == 1 and view.deferred == 0
