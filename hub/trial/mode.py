"""Trial mode: ``make demo`` on a machine with only Python, on parts that need no server.

Only ``hub demo`` ever chooses it, and only when no ``HUB_DATABASE_URL`` / ``HUB_BROKER_URL``
is configured and nothing answers where PostgreSQL and RabbitMQ would be (or when
``HUB_TRIAL=true`` asks for it). The demo then runs itself and its children with
``HUB_TRIAL=true``, SQLite and kombu's ``filesystem://``; every other command uses exactly the
configured services and stops, naming the one that does not answer. Nothing falls back.
"""

from __future__ import annotations

import os
import shutil
import socket
from dataclasses import dataclass

from rich.console import Console
from rich.panel import Panel

from hub.broker.filesystem import broker_folders, make_broker_folders, trial_root
from hub.settings import Settings, get_settings

DATABASE_FILE = "hub.sqlite3"


def trial_environment(settings: Settings) -> dict[str, str]:
    """What the demo and its children run with in trial mode."""
    root = trial_root(settings)
    return {
        "HUB_TRIAL": "true",
        "HUB_TRIAL_DIR": str(root),
        "HUB_DATABASE_URL": f"sqlite:///{root / DATABASE_FILE}",
        # The host means nothing to filesystem://, but without one kombu warns on every connect.
        "HUB_BROKER_URL": "filesystem://localhost/",
    }


def prepare(settings: Settings) -> None:
    """Start from nothing: a demo's leftovers (messages, orders) must not leak into the next."""
    root = trial_root(settings)
    for suffix in ("", "-wal", "-shm"):
        (root / f"{DATABASE_FILE}{suffix}").unlink(missing_ok=True)
    shutil.rmtree(broker_folders(settings).root, ignore_errors=True)
    make_broker_folders(settings)


# ---- choosing the mode ---------------------------------------------------------------------


@dataclass(frozen=True)
class Mode:
    trial: bool
    why: str
    # Said when the real stack turns out to be half there.
    hint: str = ""


def answers(address: str, *, timeout: float = 0.5) -> bool:
    """Does anything accept a TCP connection at ``host:port``?"""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def choose_mode(settings: Settings) -> Mode:
    configured = [
        f"HUB_{name.upper()}"
        for name in ("database_url", "broker_url")
        if name in settings.model_fields_set
    ]
    hand_named = settings.embedded_broker and settings.database_url.startswith("sqlite:")
    if settings.trial and not hand_named:
        # Asked for by name, it wins over URLs from the environment or a production .env:
        # the demo must never post into the hub those point at.
        return Mode(True, "HUB_TRIAL=true asks for trial mode")
    if configured:
        return Mode(False, f"{' and '.join(configured)} set: the demo uses exactly that")
    probes = {
        "PostgreSQL": settings.trial_probe_postgres,
        "RabbitMQ": settings.trial_probe_rabbitmq,
    }
    up = [service for service, address in probes.items() if answers(address)]
    if not up:
        where = " or ".join(f"{address} ({service})" for service, address in probes.items())
        return Mode(True, f"nothing answers at {where} and no HUB_*_URL is set")
    where = ", ".join(probes[service] for service in up)
    why = f"{' and '.join(up)} answer{'s' if len(up) == 1 else ''} at {where}"
    hint = ""
    if len(up) == 1:
        hint = (
            "only one of PostgreSQL and RabbitMQ answered, so the demo did not switch to trial "
            "mode; HUB_TRIAL=true make demo runs it on embedded parts instead"
        )
    return Mode(False, why, hint)


def banner(settings: Settings, why: str) -> Panel:
    root = trial_root(settings)
    env = (
        f"HUB_TRIAL=true HUB_TRIAL_DIR={root} HUB_DATABASE_URL={settings.database_url} "
        f"HUB_BROKER_URL={settings.broker_url}"
    )
    lines = [
        f"{why}, so the demo runs on embedded parts that need no server:",
        f"  database  SQLite, {root / DATABASE_FILE} (WAL; writers take turns)",
        f"  broker    kombu filesystem://, {broker_folders(settings).root}",
        "Works as in production: the chain, retries with backoff and Retry-After, the breaker,",
        "failure records, replay, timelines, one effect per order and step in the sandbox.",
        "[bold]Missing in trial mode[/bold] (RabbitMQ gives these; here they are not faked):",
        "  - dead-lettering: no failure queue; a message no task recorded is just dropped",
        "  - delivery limits: a message that keeps killing its worker is not stopped",
        "  - delays held in the broker: a retry's countdown waits in the worker's memory (ETA)",
        "  - publisher confirms, and the messages a worker held if it is killed outright",
        "  - hub status and /metrics, which read PostgreSQL and RabbitMQ",
        "[bold]Production needs[/bold] PostgreSQL and RabbitMQ 3.10: `docker compose up -d`, then",
        "  `make demo` (or set HUB_DATABASE_URL and HUB_BROKER_URL; see the README).",
        f"Look around afterwards with: {env} .venv/bin/hub timeline <order>",
    ]
    return Panel("\n".join(lines), title="TRIAL MODE", border_style="yellow", expand=False)


def settings_for_demo(settings: Settings, *, console: Console) -> Settings:
    """The settings ``hub demo`` runs on: as configured, or trial mode's (with its banner).

    Trial mode goes into this process's environment, so the children the demo starts run
    with it too.
    """
    mode = choose_mode(settings)
    if not mode.trial:
        if settings.embedded_broker and settings.database_url.startswith("sqlite:"):
            # Trial mode's parts named by hand (HUB_TRIAL=true and both URLs): used as they are.
            make_broker_folders(settings)
            console.print(banner(settings, mode.why))
            return settings
        console.print(f"[dim]real stack: {mode.why}[/dim]")
        if mode.hint:
            console.print(f"[yellow]{mode.hint}[/yellow]")
        return settings
    os.environ.update(trial_environment(settings))
    get_settings.cache_clear()
    trial_settings = get_settings()
    prepare(trial_settings)
    console.print(banner(trial_settings, mode.why))
    return trial_settings
