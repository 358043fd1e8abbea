"""Restarting the machine's RabbitMQ and PostgreSQL, and waiting until they answer again.

These are shared by everything on the machine (other stacks, other people's tests): callers
keep the number of restarts small.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from hub.observability.health import postgres_problem, rabbitmq_problem
from hub.settings import get_settings


class ServiceError(RuntimeError):
    """A service could not be restarted or did not come back in time."""


def _run(argv: list[str], *, timeout: float = 120) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise ServiceError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")


def wait_until_up(service: str, *, timeout: float = 120) -> float:
    """Seconds until ``service`` (rabbitmq or postgres) answered where the settings point."""
    probe = rabbitmq_problem if service == "rabbitmq" else postgres_problem
    settings = get_settings()
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if probe(settings, timeout=2) is None:
            return time.monotonic() - started
        time.sleep(0.5)
    raise ServiceError(f"{service} did not answer within {timeout:.0f} s")


def restart_rabbitmq(*, down_for: float) -> float:
    """Stop the RabbitMQ application, keep it down ``down_for`` s, start it; total seconds."""
    if shutil.which("rabbitmqctl") is None:
        raise ServiceError("rabbitmqctl not found: cannot restart RabbitMQ on this machine")
    started = time.monotonic()
    _run(["rabbitmqctl", "stop_app"])
    time.sleep(down_for)
    _run(["rabbitmqctl", "start_app"])
    wait_until_up("rabbitmq")
    return time.monotonic() - started


def postgres_cluster() -> str:
    versions = sorted(p.name for p in Path("/etc/postgresql").iterdir() if p.is_dir())
    if not versions:
        raise ServiceError("no cluster under /etc/postgresql: cannot restart PostgreSQL here")
    return versions[-1]


def restart_postgres() -> float:
    """``pg_ctlcluster <version> main restart`` (fast shutdown: sessions are cut); total seconds."""
    if shutil.which("pg_ctlcluster") is None:
        raise ServiceError("pg_ctlcluster not found: cannot restart PostgreSQL on this machine")
    started = time.monotonic()
    _run(
        [
            "pg_ctlcluster",
            "--skip-systemctl-redirect",
            postgres_cluster(),
            "main",
            "restart",
            "-m",
            "fast",
        ]
    )
    wait_until_up("postgres")
    return time.monotonic() - started
