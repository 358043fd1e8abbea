"""Counters read from folded audit counts plus the rows after the fold's mark: the same figures
as counting the whole trail, before and after folding and pruning."""

from __future__ import annotations

import uuid
from dataclasses import replace

from sqlalchemy import text

from hub.db import audit
from hub.db.engine import get_engine, unit_of_work
from hub.observability.snapshot.database import read_database
from hub.observability.snapshot.facts import DatabaseFacts
from hub.services import audit_rollup
from hub.settings import get_settings


def facts() -> DatabaseFacts:
    """The database's figures, latency sums rounded (a sum in two parts differs in the 15th
    digit)."""
    found = read_database(get_settings())
    assert isinstance(found, DatabaseFacts), found
    latency = {
        step: replace(value, sum_seconds=round(value.sum_seconds, 6))
        for step, value in found.latency_by_step.items()
    }
    # The counters only: how far the fold is behind differs before and after it, by design.
    return replace(found, latency_by_step=latency, audit_not_folded=0, audit_not_counted=0)


def record_events(count: int, *, ms: float) -> None:
    with unit_of_work() as session:
        for _ in range(count):
            order_id = uuid.uuid4()
            audit.record(session, audit.RECEIVED, order_id=order_id)
            audit.record(
                session, audit.STEP_SUCCEEDED, order_id=order_id, step="inventory", duration_ms=ms
            )
            audit.record(session, audit.RETRY_SCHEDULED, order_id=order_id, step="invoice")


def age_all(seconds: float) -> None:
    with get_engine().begin() as connection:
        connection.execute(
            text(
                "UPDATE integration_events SET created_at = created_at - make_interval(secs => :s)"
            ),
            {"s": seconds},
        )


def test_folding_changes_no_figure_and_young_rows_wait_for_the_lag() -> None:
    record_events(5, ms=30)
    age_all(3600)
    record_events(2, ms=700)  # young: not folded yet
    before = facts()

    folded = audit_rollup.fold(batch=4)

    assert folded == 15, "the five old orders' rows, in batches of four"
    after = facts()
    assert after == before
    assert after.orders_received == 7 and after.retries_by_step == {"invoice": 7}
    latency = after.latency_by_step["inventory"]
    assert latency.count == 7 and round(latency.sum_seconds, 2) == 1.55
    assert audit_rollup.fold() == 0, "the young rows wait for the lag"
    age_all(3600)
    assert audit_rollup.fold() == 6
    assert facts() == before


def test_deleting_folded_rows_keeps_every_counter() -> None:
    record_events(4, ms=30)
    age_all(3600)
    before = facts()
    audit_rollup.fold()

    with get_engine().begin() as connection:
        connection.execute(text("DELETE FROM integration_events"))

    assert facts() == before


def test_a_long_backlog_not_folded_is_read_in_a_bounded_range_and_said() -> None:
    record_events(10, ms=30)  # 30 rows, none folded (the relay is down, say)
    age_all(3600)

    found = read_database(get_settings(), unfolded_limit=12)

    assert isinstance(found, DatabaseFacts), found
    assert found.audit_not_folded == 30
    assert found.audit_not_counted == 18, "a scrape reads 12 rows past the mark, no more"
    assert found.orders_received == 4  # rows 1, 4, 7, 10 of the first 12

    audit_rollup.fold(batch=50)
    caught_up = read_database(get_settings(), unfolded_limit=12)

    assert isinstance(caught_up, DatabaseFacts), caught_up
    assert (caught_up.audit_not_folded, caught_up.audit_not_counted) == (0, 0)
    assert caught_up.orders_received == 10
