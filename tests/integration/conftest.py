from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import support


@pytest.fixture(scope="session", autouse=True)
def _real_services() -> None:
    support.require_services()
    support.fresh_schema()


@pytest.fixture(autouse=True)
def _clean_state() -> Iterator[None]:
    support.truncate_tables()
    support.declare_and_purge_queues()
    yield
