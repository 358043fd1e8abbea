"""Where a local Patroni cluster lives: its members' ports and data directories, its etcd.

Every port is derived from one base, so a test, a chaos run and ``make pg-cluster-up`` can run
side by side: etcd on base and base+1 (client, peer), member n's PostgreSQL on base+10+n and its
Patroni REST API on base+20+n.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote


@dataclass(frozen=True)
class Member:
    name: str
    pg_port: int
    rest_port: int
    home: Path

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def config(self) -> Path:
        return self.home / "patroni.yml"

    @property
    def log(self) -> Path:
        return self.home / "patroni.log"

    @property
    def pid_file(self) -> Path:
        return self.home / "patroni.pid"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"


@dataclass(frozen=True)
class PgLayout:
    base_dir: Path
    port_base: int = 25400
    scope: str = "hubpg"
    size: int = 3

    @property
    def etcd_port(self) -> int:
        return self.port_base

    @property
    def etcd_peer_port(self) -> int:
        return self.port_base + 1

    @property
    def etcd_dir(self) -> Path:
        return self.base_dir / "etcd"

    @property
    def members(self) -> list[Member]:
        return [
            Member(
                name=f"{self.scope}{n}",
                pg_port=self.port_base + 10 + n,
                rest_port=self.port_base + 20 + n,
                home=self.base_dir / f"{self.scope}{n}",
            )
            for n in range(1, self.size + 1)
        ]

    def member(self, name: str) -> Member:
        for member in self.members:
            if name in (member.name, member.name.removeprefix(self.scope)):
                return member
        raise KeyError(f"no member {name!r}; the members are {[m.name for m in self.members]}")

    def database_url(self, database: str, *, user: str = "postgres") -> str:
        """The hub's HUB_DATABASE_URL: every member, and libpq keeps the one that takes writes.

        libpq tries the hosts in order and, with ``target_session_attrs=read-write``, drops a
        connection to a standby and moves to the next host; no proxy sits in the path.
        """
        return self.multi_host_url([m.pg_port for m in self.members], database, user=user)

    @staticmethod
    def multi_host_url(ports: list[int], database: str, *, user: str = "postgres") -> str:
        """A multi-host URL of these ports on 127.0.0.1, in this order."""
        hosts = "&".join(f"host=127.0.0.1:{port}" for port in ports)
        return (
            f"postgresql+psycopg2://{quote(user)}@/{quote(database)}"
            f"?{hosts}&target_session_attrs=read-write"
        )

    def libpq_dsn(self, database: str) -> str:
        hosts = ",".join("127.0.0.1" for _ in self.members)
        ports = ",".join(str(m.pg_port) for m in self.members)
        return (
            f"host={hosts} port={ports} dbname={database} user=postgres "
            "target_session_attrs=read-write connect_timeout=3"
        )
