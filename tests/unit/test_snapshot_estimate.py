"""The estimate of order statuses counted only up to the snapshot's cap."""

from __future__ import annotations

from hub.observability.snapshot.database import estimate_past_cap


def test_one_status_past_the_cap_gets_the_rest_of_the_table() -> None:
    counted = {"received": 4, "processing": 6, "completed": 100}

    found = estimate_past_cap(counted, ["completed"], (5_000_010.0, None, None), cap=100)

    assert found == {"completed": 5_000_000}


def test_two_statuses_past_the_cap_share_the_rest_by_their_frequencies() -> None:
    counted = {"received": 10, "completed": 100, "failed": 100}
    stats = (1_000_010.0, ["completed", "failed", "received"], [0.75, 0.25, 0.00001])

    found = estimate_past_cap(counted, ["completed", "failed"], stats, cap=100)

    assert found == {"completed": 750_000, "failed": 250_000}


def test_no_estimate_yet_never_reads_below_the_cap() -> None:
    # A table never analyzed: reltuples is -1 (PostgreSQL 14 and later).
    found = estimate_past_cap({"completed": 100}, ["completed"], (-1.0, None, None), cap=100)

    assert found == {"completed": 100}
