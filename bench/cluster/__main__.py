"""``python -m bench.cluster up|down|status|kill|stop|restart|queues|url``: a local 3-node cluster.

``make cluster-up`` / ``make cluster-down`` run the first two. The nodes are hubc1..3@localhost,
AMQP on 127.0.0.1:5701-5703, Erlang distribution on 25701-25703, data and logs under
var/cluster/; the machine's own node (rabbit@localhost, 5672) is left alone.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.cluster.control import Cluster, ClusterError, port_answers
from bench.cluster.layout import Layout
from bench.cluster.queues import list_queues

DEFAULT_LAYOUT = Layout(base_dir=Path("var/cluster").resolve())


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start three fresh nodes and join them")
    sub.add_parser("down", help="stop the nodes started by up")
    sub.add_parser("status", help="each node: running, listening, member of the cluster")
    sub.add_parser("queues", help="every queue: type, leader, members")
    sub.add_parser("url", help="the failover HUB_BROKER_URL (FIRST=n to start at node n)")
    for name, text in (
        ("kill", "SIGKILL a node (1, 2, 3 or its name)"),
        ("stop", "stop a node cleanly"),
        ("restart", "start a stopped or killed node again"),
    ):
        sub.add_parser(name, help=text).add_argument("node")
    sub.choices["url"].add_argument("--first", type=int, default=1)
    return parser.parse_args(argv)


def status(cluster: Cluster) -> None:
    try:
        members = set(cluster.running_members())
    except ClusterError as exc:
        members = set()
        print(f"cluster: {exc}")
    for node in cluster.layout.nodes:
        pid = cluster.pid(node)
        listening = port_answers(node.amqp_port)
        print(
            f"{node.name:<18} pid {pid or '-':<8} amqp 127.0.0.1:{node.amqp_port} "
            f"{'answers' if listening else 'closed':<8} "
            f"{'in the cluster' if node.name in members else 'not running in the cluster'}"
        )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cluster = Cluster(DEFAULT_LAYOUT)
    layout = cluster.layout
    try:
        if args.command == "up":
            seconds = cluster.up()
            print(f"3 nodes up and joined in {seconds:.0f} s; logs under {layout.base_dir}")
            print(f"HUB_BROKER_URL='{layout.broker_url()}'")
        elif args.command == "down":
            cluster.down()
            print("cluster stopped")
        elif args.command == "status":
            status(cluster)
        elif args.command == "queues":
            for info in list_queues(cluster):
                print(f"{info.name:<40} {info.type:<8} {info.leader:<18} {' '.join(info.members)}")
        elif args.command == "url":
            print(layout.broker_url(args.first))
        elif args.command == "kill":
            cluster.kill(layout.node(args.node))
        elif args.command == "stop":
            cluster.stop(layout.node(args.node))
        elif args.command == "restart":
            print(f"answering after {cluster.restart(layout.node(args.node)):.1f} s")
    except (ClusterError, KeyError) as exc:
        print(f"cluster: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
