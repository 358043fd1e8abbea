"""Start, stop, kill and watch the members of a local Patroni cluster (and its one etcd).

Each process is started by this module, its pid written beside its data, and stopped by that
pid only: nothing else on the machine (the machine's own PostgreSQL on 5432) is touched.
PostgreSQL refuses to run as root, so when run as root the members run as the ``postgres``
user, and their directories belong to it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from bench.pg_cluster.layout import Member, PgLayout

PG_BIN = Path("/usr/lib/postgresql/15/bin")
INSTALL = "make pg-tools  (apt-get install patroni etcd-server)"


REPLICATING = ("running", "streaming")


class PgClusterError(RuntimeError):
    pass


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise PgClusterError(f"{name} is not installed: {INSTALL}")
    return found


def port_answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _run_as() -> dict[str, Any]:
    """Popen options: the ``postgres`` user when we are root (initdb refuses root)."""
    return {"user": "postgres", "group": "postgres"} if os.geteuid() == 0 else {}


def _chown(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, "postgres", "postgres")


def patroni_config(layout: PgLayout, member: Member) -> dict[str, Any]:
    """One member's Patroni configuration (JSON is YAML, so no YAML writer is needed)."""
    return {
        "scope": layout.scope,
        "namespace": "/hub/",
        "name": member.name,
        "log": {"level": "INFO"},
        "restapi": {
            "listen": f"127.0.0.1:{member.rest_port}",
            "connect_address": f"127.0.0.1:{member.rest_port}",
        },
        "etcd3": {"hosts": [f"127.0.0.1:{layout.etcd_port}"]},
        "bootstrap": {
            "dcs": {
                # A lost primary's leader key expires after ttl: the time without a primary
                # after a kill is about ttl + loop_wait.
                "ttl": 10,
                "loop_wait": 1,
                "retry_timeout": 4,
                "maximum_lag_on_failover": 1048576,
                # A commit is acknowledged only once a synchronous standby has it, and only
                # that standby may be promoted: a failover loses no acknowledged commit.
                "synchronous_mode": True,
                "postgresql": {
                    "use_pg_rewind": True,
                    "use_slots": True,
                    "parameters": {
                        "wal_level": "replica",
                        "hot_standby": "on",
                        "wal_log_hints": "on",  # pg_rewind needs it (or data checksums)
                        "max_wal_senders": 10,
                        "max_replication_slots": 10,
                        "max_connections": 100,
                        "shared_buffers": "64MB",
                    },
                },
            },
            "initdb": [{"encoding": "UTF8"}, {"locale": "C.UTF-8"}],
            "pg_hba": [
                "local all all trust",
                "host replication replicator 127.0.0.1/32 trust",
                "host all all 127.0.0.1/32 trust",
            ],
        },
        "postgresql": {
            "listen": f"127.0.0.1:{member.pg_port}",
            "connect_address": f"127.0.0.1:{member.pg_port}",
            "data_dir": str(member.data_dir),
            "bin_dir": str(PG_BIN),
            "pgpass": str(member.home / "pgpass"),
            "authentication": {
                "superuser": {"username": "postgres", "password": "postgres"},
                "replication": {"username": "replicator", "password": "replicator"},
                "rewind": {"username": "postgres", "password": "postgres"},
            },
            # Its own socket directory: the machine's PostgreSQL owns /var/run/postgresql.
            "parameters": {"unix_socket_directories": str(member.home)},
            # A failed rewind would leave a member out for good; a fresh base backup instead.
            "remove_data_directory_on_rewind_failure": True,
        },
    }


@dataclass(frozen=True)
class MemberState:
    name: str
    role: str  # leader, sync_standby, replica
    state: str  # running, streaming, stopped, ...
    timeline: int | None
    lag: Any


class PgCluster:
    def __init__(self, layout: PgLayout) -> None:
        self.layout = layout

    # -- processes -------------------------------------------------------------------------

    def up(self, *, timeout: float = 180) -> float:
        """A fresh cluster (whatever an earlier run left under base_dir is removed); seconds."""
        tool("patroni")
        tool("etcd")
        if not (PG_BIN / "postgres").exists():
            raise PgClusterError(f"PostgreSQL 15 is not installed at {PG_BIN}")
        busy = [
            p
            for p in (
                self.layout.etcd_port,
                *(m.pg_port for m in self.layout.members),
                *(m.rest_port for m in self.layout.members),
            )
            if port_answers(p)
        ]
        if busy:
            raise PgClusterError(
                f"ports {busy} are in use: a cluster already running? (make pg-cluster-down)"
            )
        started = time.monotonic()
        self.down()
        shutil.rmtree(self.layout.base_dir, ignore_errors=True)
        self.layout.base_dir.mkdir(parents=True)
        _chown(self.layout.base_dir)
        self._start_etcd()
        for member in self.layout.members:
            member.home.mkdir(parents=True, exist_ok=True)
            _chown(member.home)
            member.config.write_text(json.dumps(patroni_config(self.layout, member), indent=2))
            self.start(member)
        self.wait_healthy(timeout=timeout)
        return time.monotonic() - started

    def _start_etcd(self) -> None:
        layout = self.layout
        layout.etcd_dir.mkdir(parents=True, exist_ok=True)
        peer = f"http://127.0.0.1:{layout.etcd_peer_port}"
        client = f"http://127.0.0.1:{layout.etcd_port}"
        argv = [
            tool("etcd"),
            f"--name={layout.scope}-etcd",
            f"--data-dir={layout.etcd_dir / 'data'}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster={layout.scope}-etcd={peer}",
            "--initial-cluster-state=new",
        ]
        with open(layout.etcd_dir / "etcd.log", "ab") as log:
            process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        (layout.etcd_dir / "etcd.pid").write_text(str(process.pid))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{client}/health", timeout=1).status_code == 200:
                    return
            if process.poll() is not None:
                break
            time.sleep(0.3)
        raise PgClusterError(f"etcd did not start: see {layout.etcd_dir / 'etcd.log'}")

    def start(self, member: Member) -> None:
        """Start (or restart) one member's Patroni; it starts and stops PostgreSQL itself."""
        with open(member.log, "ab") as log:
            process = subprocess.Popen(
                [tool("patroni"), str(member.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=member.home,
                **_run_as(),
            )
        member.pid_file.write_text(str(process.pid))

    def patroni_pid(self, member: Member) -> int | None:
        return _live_pid(member.pid_file)

    def postmaster_pid(self, member: Member) -> int | None:
        return _live_pid(member.data_dir / "postmaster.pid")

    def kill(self, member: Member) -> None:
        """The member's host dies: SIGKILL its Patroni and its PostgreSQL, no goodbye."""
        for pid in (self.patroni_pid(member), self.postmaster_pid(member)):
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        _wait_gone(lambda: self.postmaster_pid(member), timeout=15)

    def stop(self, member: Member, *, timeout: float = 60) -> None:
        """A clean stop: Patroni stops PostgreSQL and gives up the leader key at once."""
        pid = self.patroni_pid(member)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            if not _wait_gone(lambda: self.patroni_pid(member), timeout=timeout):
                self.kill(member)

    def down(self) -> None:
        for member in self.layout.members:
            if member.pid_file.exists():
                self.stop(member, timeout=30)
                self.kill(member)  # a PostgreSQL left behind by a killed Patroni
        pid = _live_pid(self.layout.etcd_dir / "etcd.pid")
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            _wait_gone(lambda: _live_pid(self.layout.etcd_dir / "etcd.pid"), timeout=15)

    # -- state -----------------------------------------------------------------------------

    def members(self) -> list[MemberState]:
        """What Patroni says of every member (from the first REST API that answers)."""
        for member in self.layout.members:
            try:
                found = requests.get(f"{member.rest_url}/cluster", timeout=2).json()
            except (requests.RequestException, ValueError):
                continue
            return [
                MemberState(
                    name=m["name"],
                    role=m.get("role", "?"),
                    state=m.get("state", "?"),
                    timeline=m.get("timeline"),
                    lag=m.get("lag"),
                )
                for m in found.get("members", [])
            ]
        return []

    def leader(self) -> Member | None:
        for state in self.members():
            if state.role == "leader" and state.state == "running":
                return self.layout.member(state.name)
        return None

    def healthy(self) -> bool:
        """A running leader, every other member streaming, one of them synchronous."""
        states = self.members()
        if len(states) != self.layout.size:
            return False
        leaders = [s for s in states if s.role == "leader" and s.state == "running"]
        # Patroni 3.0.2 says "running" of a standby, later versions "streaming".
        replicating = [
            s for s in states if s.role != "leader" and s.state in REPLICATING and s.lag is not None
        ]
        sync = [s for s in replicating if s.role == "sync_standby"]
        return len(leaders) == 1 and len(sync) >= 1 and len(replicating) == self.layout.size - 1

    def wait_healthy(self, *, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.healthy():
                return
            time.sleep(0.5)
        logs = ", ".join(str(m.log) for m in self.layout.members)
        raise PgClusterError(
            f"no healthy cluster after {timeout:.0f} s: {self.members()}; see {logs}"
        )

    def wait_leader(self, *, other_than: Member | None = None, timeout: float = 90) -> Member:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            leader = self.leader()
            if leader is not None and leader != other_than:
                return leader
            time.sleep(0.2)
        raise PgClusterError(f"no new leader after {timeout:.0f} s: {self.members()}")

    def rewound(self, member: Member) -> bool:
        """Whether Patroni ran pg_rewind on this member (its log says so)."""
        return member.log.exists() and "running pg_rewind from" in member.log.read_text(
            errors="replace"
        )


def _live_pid(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    with contextlib.suppress(OSError):  # a zombie child of ours is gone for every purpose
        if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
            return None
    return pid


def _wait_gone(pid: Any, *, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pid() is None:
            return True
        time.sleep(0.2)
    return False
