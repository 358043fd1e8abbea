"""A connection that fails names what failed and its fix: a wrong password or a missing vhost
is not a server to start."""

from __future__ import annotations

import os
import subprocess
import sys
from urllib.parse import urlsplit, urlunsplit

from hub.settings import get_settings


def check(broker_url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub", "check"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "HUB_BROKER_URL": broker_url},
    )


def _with(netloc_user: str | None = None, vhost: str | None = None) -> str:
    parts = urlsplit(get_settings().broker_url)
    netloc = parts.netloc
    if netloc_user is not None:
        netloc = f"{netloc_user}@{netloc.rpartition('@')[2]}"
    return urlunsplit(parts._replace(netloc=netloc, path=f"/{vhost}" if vhost else parts.path))


def test_a_wrong_rabbitmq_password_names_the_credentials() -> None:
    ran = check(_with(netloc_user="guest:not-the-password"))
    said = " ".join((ran.stdout + ran.stderr).split())

    assert ran.returncode == 3, said
    assert "ACCESS_REFUSED" in said and "'guest'" in said
    assert "check the user and password in HUB_BROKER_URL" in said
    assert "rabbitmq-server" not in said and "not reachable" not in said
    assert "not-the-password" not in said


def test_a_missing_vhost_names_rabbitmqctl_add_vhost() -> None:
    ran = check(_with(vhost="hub_no_such_vhost"))
    said = " ".join((ran.stdout + ran.stderr).split())

    assert ran.returncode == 3, said
    assert "no vhost 'hub_no_such_vhost'" in said
    assert "rabbitmqctl add_vhost hub_no_such_vhost" in said
    assert "rabbitmq-server" not in said


def test_a_bad_setting_keeps_its_brackets_and_says_no_regex() -> None:
    ran = subprocess.run(
        [sys.executable, "-m", "hub", "check"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "HUB_TRIAL_PROBE_RABBITMQ": "[::1]"},
    )
    said = ran.stdout + ran.stderr

    assert ran.returncode == 2, said
    assert "HUB_TRIAL_PROBE_RABBITMQ: must be host:port" in said
    assert "pattern" not in said
