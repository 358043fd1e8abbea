"""On a stack set up as the docs say, ``hub doctor`` finds nothing wrong, and it asked the
workers themselves (their hub version and shared settings)."""

from __future__ import annotations

import os
import subprocess
import sys

from kombu import Connection

from hub.settings import get_settings
from tests.e2e.conftest import Stack


def test_a_healthy_stack_has_no_problem(stack: Stack) -> None:
    ran = subprocess.run(
        [sys.executable, "-m", "hub", "doctor", "--window", "2"],
        capture_output=True,
        text=True,
        timeout=120,
    )

    # The tests' broker may be RabbitMQ's default vhost (CI's is): that is advice, exit 0.
    assert ("vhost (advice)" in ran.stdout) == (make_url_vhost() == "/"), ran.stdout
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "no problem found" in ran.stdout


def make_url_vhost() -> str:
    """The vhost of the tests' broker URL ('/' when none is named)."""
    return Connection(get_settings().broker_url).virtual_host or "/"


def test_a_worker_with_other_settings_is_named(stack: Stack) -> None:
    ran = subprocess.run(
        [sys.executable, "-m", "hub", "doctor", "--window", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HUB_BREAKER__MIN_CALLS": "9"},
    )

    assert ran.returncode == 1
    assert "HUB_BREAKER" in ran.stdout and "worker1" in ran.stdout and "worker2" in ran.stdout
