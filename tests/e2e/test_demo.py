"""``make demo``'s main job, run as a user runs it: a batch completes, Ctrl-C stops everything."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from hub.db.engine import get_engine
from hub.demo.processes import http_ok
from hub.settings import get_settings
from tests import ports, support
from tests.e2e.conftest import Stack

PORT_BASE = ports.port("demo")


@pytest.fixture
def demo_env() -> Iterator[dict[str, str]]:
    """The tests' own settings, as an operator's ``HUB_*`` would be: the demo must move itself
    to a place of its own (database, queue prefix, ports) beside them. Once it posted into the
    configured hub."""
    yield dict(os.environ)


def demo_database() -> str:
    """Where the demo's own place keeps its orders: ``<configured database>_demo``."""
    url = make_url(get_settings().database_url)
    return url.set(database=f"{url.database}_demo").render_as_string(hide_password=False)


def demo_orders(url: str) -> int:
    """Orders in the demo's database so far (0 while it is still being created)."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(text("SELECT count(*) FROM orders")).scalar_one())
    except SQLAlchemyError:
        return 0
    finally:
        engine.dispose()


def demo_urls() -> list[str]:
    """The API, the three HTTP sandboxes and the SMTP sandbox's /_ endpoints (+5)."""
    return [
        f"http://127.0.0.1:{PORT_BASE + n}/{'healthz' if n == 0 else '_health'}"
        for n in (0, 1, 2, 3, 5)
    ]


def test_the_demo_completes_its_orders_and_one_failure_is_replayed(
    stack: Stack, demo_env: dict[str, str]
) -> None:
    # Beside a running hub (the e2e stack, its workers on the configured queues), with that
    # hub's settings: the demo takes a place of its own and leaves the hub alone.
    # With the notify step on (off by default: the Ctrl-C runs below and the trial tier's demo
    # run without it): the demo serves the SMTP sandbox too and counts the e-mails.
    run = subprocess.run(
        [sys.executable, "-m", "hub", "demo", "--orders", "30"],
        env={**demo_env, "HUB_NOTIFY_ENABLED": "1"},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )

    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    said = " ".join(run.stdout.split())
    prefix = get_settings().queue_prefix
    assert f"the demo's own place: database {make_url(demo_database()).database}" in said
    assert f"queue prefix {prefix}demo" in said and f"127.0.0.1:{PORT_BASE}-" in said
    assert demo_orders(demo_database()) >= 32, "the batch and the scenes' orders, in its own db"
    with get_engine().connect() as connection:
        posted_here = connection.execute(
            text("SELECT count(*) FROM orders WHERE external_id LIKE 'DEMO-%'")
        ).scalar_one()
    assert posted_here == 0, "the demo posted into the configured hub"
    assert "every order completed, each effect applied once" in run.stdout
    assert "out_of_stock" in run.stdout and "replayed: order" in run.stdout
    assert "each effect undone once" in run.stdout  # the cancellation scene
    assert "corrected and replayed: order" in run.stdout
    assert "orders completed" in run.stdout
    # 30 orders, the replayed one and the corrected one (the cancelled one never reaches the
    # invoice): each customer e-mailed once, from the SMTP ledger.
    mails = re.search(r"e-mails: one to each order's customer\D*(\d+)\D*(\d+)", run.stdout)
    assert mails is not None and mails.groups() == ("32", "32"), run.stdout[-3000:]
    assert not any(http_ok(url)() for url in demo_urls()), "the demo left a process running"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_stops_everything_the_demo_started(
    demo_env: dict[str, str], signum: signal.Signals
) -> None:
    demo = subprocess.Popen(
        [sys.executable, "-m", "hub", "demo", "--orders", "5000"],
        env=demo_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        support.wait_for(
            lambda: http_ok(demo_urls()[0])(), timeout=90, what="the demo's API to come up"
        )
        support.wait_for(
            lambda: demo_orders(demo_database()) > 0, timeout=90, what="the demo to post orders"
        )
        demo.send_signal(signum)
        output, _ = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()

    assert demo.returncode == 130, output[-2000:]
    assert "stopping everything the demo started" in output
    assert not any(http_ok(url)() for url in demo_urls()), "a child outlived Ctrl-C"
