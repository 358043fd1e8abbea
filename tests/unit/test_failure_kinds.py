"""Every failure kind the hub records can be asked for: the failures page's filter takes them
all, ``crashed`` included (it used to answer 422 to ``kind=crashed``)."""

from __future__ import annotations

import pytest

from hub.core.statuses import FAILURE_KINDS
from hub.entrypoints.ui.forms import read_filters


@pytest.mark.parametrize("kind", FAILURE_KINDS)
def test_the_failures_page_filters_on_every_kind(kind: str) -> None:
    filters = read_filters({"kind": kind})

    assert filters.problems == []
    assert filters.criteria is not None and filters.criteria.error_kind == kind


def test_an_unknown_kind_is_named_with_all_of_them() -> None:
    filters = read_filters({"kind": "gone"})

    assert filters.criteria is None
    assert filters.problems == [
        "error kind must be one of permanent, exhausted, poison, crashed, stalled, compensation"
    ]
