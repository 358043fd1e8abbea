"""``make demo``'s main job, run as a user runs it: a batch completes, Ctrl-C stops everything."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import make_url

from hub.demo.processes import http_ok
from hub.settings import get_settings
from tests import support

PORT_BASE = int(os.environ["HUB_API_PORT"]) + 20


@pytest.fixture
def demo_env() -> Iterator[dict[str, str]]:
    """The demo on its own database, queue prefix and ports, beside the e2e stack."""
    settings = get_settings()
    database = make_url(settings.database_url).set(
        database=f"{make_url(settings.database_url).database}_demo"
    )
    yield {
        **os.environ,
        "HUB_DATABASE_URL": database.render_as_string(hide_password=False),
        "HUB_QUEUE_PREFIX": f"{settings.queue_prefix}demo",
        "HUB_API_PORT": str(PORT_BASE),
        "HUB_ERP_URL": f"http://127.0.0.1:{PORT_BASE + 1}",
        "HUB_WAREHOUSE_URL": f"http://127.0.0.1:{PORT_BASE + 2}",
        "HUB_ACCOUNTING_URL": f"http://127.0.0.1:{PORT_BASE + 3}",
    }


def demo_urls() -> list[str]:
    return [
        f"http://127.0.0.1:{PORT_BASE + n}/{'healthz' if n == 0 else '_health'}" for n in range(4)
    ]


def test_the_demo_completes_its_orders_and_one_failure_is_replayed(
    demo_env: dict[str, str],
) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "hub", "demo", "--orders", "30"],
        env=demo_env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )

    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "every order completed, each effect applied once" in run.stdout
    assert "out_of_stock" in run.stdout and "replayed: order" in run.stdout
    assert "orders completed" in run.stdout
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
        time.sleep(1)  # posting is under way
        demo.send_signal(signum)
        output, _ = demo.communicate(timeout=60)
    finally:
        if demo.poll() is None:
            demo.kill()

    assert demo.returncode == 130, output[-2000:]
    assert "stopping everything the demo started" in output
    assert not any(http_ok(url)() for url in demo_urls()), "a child outlived Ctrl-C"
