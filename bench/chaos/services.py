"""The chaos run's own RabbitMQ node and PostgreSQL cluster, which its nemesis restarts.

The machine's RabbitMQ and PostgreSQL are shared by every stack, suite and person on it: the
chaos run never stops them. It starts a RabbitMQ node of its own (``bench.cluster`` with one
node: its own name, ports, data directory and Erlang cookie) and a PostgreSQL cluster of its own
(``initdb`` under ``var/chaos/pg``, driven by ``pg_ctl -D`` on that directory only), restarts
those, and stops them by their pids and data directory at the end.

Every port is derived from the chaos stack's base (``HUB_CHAOS_PORT_BASE``, default 18510), all
below the kernel's ephemeral range (32768 and up), where an outgoing connection of any program
may hold a port when we bind it:

    base+0..4    the hub's API, the three sandbox systems, a baseline (``bench.env.CHAOS``)
    base+20      the RabbitMQ node's AMQP listener;  base+21 its Erlang distribution port
    base+30..39  rabbitmqctl's own distribution ports
    base+40      PostgreSQL
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.cluster.control import Cluster, ClusterError, port_answers
from bench.cluster.layout import Layout
from hub.observability.health import postgres_problem, rabbitmq_problem
from hub.settings import get_settings

PG_BIN = Path("/usr/lib/postgresql/15/bin")
EPHEMERAL_START = 32768
# The highest offset from the base this module uses (PostgreSQL's port).
SPAN = 40


class ServiceError(RuntimeError):
    """A private service could not be started, restarted or stopped, or did not come back."""


def check_base(base: int) -> None:
    if not base >= 1024 or base + SPAN >= EPHEMERAL_START:
        raise ServiceError(
            f"HUB_CHAOS_PORT_BASE={base}: its ports {base}-{base + SPAN} must lie within "
            f"1024-{EPHEMERAL_START - 1} (the kernel hands out {EPHEMERAL_START} and up to "
            "outgoing connections)"
        )


def broker_layout(base: int, var: Path) -> Layout:
    """One RabbitMQ node, ``hubnemesis1@localhost``, on base+20 (AMQP) and base+21 (its name
    differs from make cluster-chaos's hubchaos1..3: node names are global to the machine)."""
    return Layout(
        base_dir=(var / "broker").resolve(),
        prefix="hubnemesis",
        amqp_base=base + 20,
        dist_base=base + 21,
        size=1,
        ctl_base=base + 30,
    )


def _as_postgres() -> dict[str, Any]:
    """Popen options: the ``postgres`` user when we are root (PostgreSQL refuses root)."""
    return {"user": "postgres", "group": "postgres"} if os.geteuid() == 0 else {}


def _run(argv: list[str], *, timeout: float = 120, **options: Any) -> str:
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=timeout, check=False, **options
        )
    except subprocess.TimeoutExpired as exc:
        raise ServiceError(f"{' '.join(argv)} did not finish within {timeout:.0f} s") from exc
    if done.returncode != 0:
        problem = (done.stderr or done.stdout).strip()
        raise ServiceError(f"{' '.join(argv)} failed ({done.returncode}): {problem}")
    return str(done.stdout)


@dataclass(frozen=True)
class PgNode:
    """A PostgreSQL cluster of our own: its data under ``root``, listening on ``port``.

    ``pg_ctl -D <our data directory>`` is the only handle used on it, so no other cluster
    of the machine can be stopped by mistake."""

    root: Path
    port: int

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/hub_chaos"

    def options(self) -> str:
        # Its own socket directory (the machine's cluster owns /var/run/postgresql). The
        # threads pool holds many connections: 2 workers x 32 threads, the relay, the API.
        return (
            f"-p {self.port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories={self.root} -c max_connections=300 "
            "-c shared_buffers=128MB"
        )

    def pg_ctl(self, *args: str, timeout: float = 120) -> str:
        return _run(
            [str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), *args],
            timeout=timeout,
            cwd=self.root,
            **_as_postgres(),
        )

    def init(self) -> None:
        """A fresh, empty cluster (whatever an earlier run left is removed)."""
        if not (PG_BIN / "initdb").exists():
            raise ServiceError(f"{PG_BIN / 'initdb'} not found: install postgresql-15")
        self.stop()  # ours, left running by an interrupted run (found by its data directory)
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir(parents=True)
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        _run(
            [str(PG_BIN / "initdb"), "-D", str(self.data_dir), "-A", "trust", "-U", "postgres"],
            cwd=self.root,
            **_as_postgres(),
        )

    def running(self) -> bool:
        if not (self.data_dir / "postmaster.pid").exists():
            return False
        done = subprocess.run(
            [str(PG_BIN / "pg_ctl"), "-D", str(self.data_dir), "status"],
            capture_output=True,
            check=False,
            cwd=self.root,
            **_as_postgres(),
        )
        return done.returncode == 0

    def start(self) -> None:
        if port_answers(self.port):
            raise ServiceError(f"port {self.port} is taken: something else listens there")
        self.pg_ctl("start", "-w", "-t", "60", "-l", str(self.log_file), "-o", self.options())

    def restart(self) -> None:
        """A fast shutdown (sessions are cut, as by an operator's restart), then a start."""
        self.pg_ctl(
            "restart", "-w", "-t", "60", "-m", "fast", "-l", str(self.log_file),
            "-o", self.options(),
        )  # fmt: skip

    def stop(self) -> None:
        if self.running():
            self.pg_ctl("stop", "-w", "-t", "60", "-m", "fast")


class OwnServices:
    """The run's RabbitMQ node and PostgreSQL cluster: started, restarted, stopped."""

    def __init__(self, base: int, var: Path) -> None:
        check_base(base)
        self.broker = Cluster(broker_layout(base, var))
        self.node = self.broker.layout.node(1)
        self.postgres = PgNode(root=(var / "pg").resolve(), port=base + SPAN)

    @property
    def broker_url(self) -> str:
        return self.broker.layout.broker_url()

    @property
    def database_url(self) -> str:
        return self.postgres.url

    def up(self) -> None:
        try:
            self.postgres.init()
            self.postgres.start()
            self.broker.up()
        except (ClusterError, ServiceError):
            self.down()
            raise

    def down(self) -> None:
        """Stop both (each whatever the other did), by our pid file and data directory."""
        try:
            self.broker.down()
        finally:
            self.postgres.stop()

    def restart_rabbitmq(self, *, down_for: float) -> float:
        """Stop the node cleanly, keep it down ``down_for`` s, start it; total seconds."""
        started = time.monotonic()
        try:
            self.broker.stop(self.node)
            time.sleep(down_for)  # the outage itself
            self.broker.restart(self.node)
        except ClusterError as exc:
            raise ServiceError(str(exc)) from exc
        wait_until_up("rabbitmq")
        return time.monotonic() - started

    def restart_postgres(self) -> float:
        """``pg_ctl restart -m fast`` on our cluster; seconds until it answers again."""
        started = time.monotonic()
        self.postgres.restart()
        wait_until_up("postgres")
        return time.monotonic() - started


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
