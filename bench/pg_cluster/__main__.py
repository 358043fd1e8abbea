"""``python -m bench.pg_cluster up|down|status|url|kill|stop|start``: a local Patroni cluster.

``make pg-cluster-up`` / ``pg-cluster-down`` / ``pg-cluster-status``. Three PostgreSQL 15
members (hubpg1..3 on 127.0.0.1:25411-25413, Patroni REST on 25421-25423), one etcd on 25400,
data and logs under var/pg-cluster/; HUB_PG_CLUSTER_PORT_BASE moves every port. The machine's
own PostgreSQL (5432) is left alone.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from bench.pg_cluster.control import PgCluster, PgClusterError, port_answers
from bench.pg_cluster.layout import PgLayout


def default_layout() -> PgLayout:
    base = int(os.environ.get("HUB_PG_CLUSTER_PORT_BASE", "25400"))
    return PgLayout(base_dir=Path("var/pg-cluster").resolve(), port_base=base)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.pg_cluster", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start etcd and three fresh members, wait for a sync standby")
    sub.add_parser("down", help="stop what up started")
    sub.add_parser("status", help="each member: role, state, timeline, lag")
    sub.add_parser("url", help="the multi-host HUB_DATABASE_URL (DATABASE=hub)")
    for name, text in (
        ("kill", "SIGKILL a member's Patroni and PostgreSQL (1, 2, 3 or its name)"),
        ("stop", "stop a member cleanly"),
        ("start", "start a stopped or killed member again"),
    ):
        sub.add_parser(name, help=text).add_argument("member")
    return parser.parse_args(argv)


def status(cluster: PgCluster) -> int:
    states = {s.name: s for s in cluster.members()}
    for member in cluster.layout.members:
        found = states.get(member.name)
        answers = "answers" if port_answers(member.pg_port) else "closed"
        if found is None:
            line = "not in the cluster"
        else:
            line = f"{found.role:<12} {found.state:<10} timeline {found.timeline} lag {found.lag}"
        print(f"{member.name:<8} postgres 127.0.0.1:{member.pg_port} {answers:<8} {line}")
    print(f"HUB_DATABASE_URL={cluster.layout.database_url('hub')}")
    return 0 if cluster.healthy() else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cluster = PgCluster(default_layout())
    layout = cluster.layout
    try:
        if args.command == "up":
            took = cluster.up()
            print(f"cluster up in {took:.0f} s")
            return status(cluster)
        if args.command == "down":
            cluster.down()
            print("stopped")
            return 0
        if args.command == "status":
            return status(cluster)
        if args.command == "url":
            print(layout.database_url(os.environ.get("DATABASE", "hub")))
            return 0
        member = layout.member(args.member)
        if args.command == "kill":
            cluster.kill(member)
        elif args.command == "stop":
            cluster.stop(member)
        else:
            cluster.start(member)
        return 0
    except (PgClusterError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
