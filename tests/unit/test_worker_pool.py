"""The worker's threads pool: a requests session per thread, pools sized for the threads."""

from __future__ import annotations

import threading

import pytest
from celery.concurrency import get_implementation
from typer.testing import CliRunner

from adapters.http import thread_session
from hub.entrypoints.cli.main import cli
from tasks.app import runs_on_threads


def test_each_thread_gets_its_own_session_and_keeps_it() -> None:
    mine = thread_session()
    theirs: list[object] = []
    worker = threading.Thread(target=lambda: theirs.extend([thread_session(), thread_session()]))
    worker.start()
    worker.join()

    assert thread_session() is mine
    assert theirs[0] is theirs[1]
    assert theirs[0] is not mine


@pytest.mark.parametrize(
    ("pool", "threads"),
    [
        ("threads", True),
        (get_implementation("threads"), True),
        ("prefork", False),
        (get_implementation("prefork"), False),
    ],
)
def test_the_threads_pool_is_told_from_the_others(pool: object, threads: bool) -> None:
    assert runs_on_threads(pool) is threads


@pytest.mark.parametrize(
    ("args", "named"),
    [(["--pool", "gevent"], "--pool"), (["--concurrency", "0"], "--concurrency")],
)
def test_a_bad_pool_or_concurrency_is_refused_by_name(args: list[str], named: str) -> None:
    result = CliRunner().invoke(cli, ["worker", *args])

    assert result.exit_code == 2
    assert named in result.output
