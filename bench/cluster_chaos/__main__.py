"""``make cluster-chaos`` / ``python -m bench.cluster_chaos``: a node lost under a load of orders.

A three-node RabbitMQ cluster of its own (hubchaos1..3@localhost, AMQP 127.0.0.1:5711-5713), a
hub of its own (database ``hub_cluster``, queue prefix ``hubcluster``, ports 18520-18523),
three workers each pointed at a different first node, the relay and the API on the failover
list from node 1. Orders stream in; the node leading the work queues is SIGKILLed and later
restarted; then another node is stopped cleanly and restarted. Then the exactly-once check of
``make chaos`` and the stalls of intake, publishing and consuming around each loss.

Exits 0 when every accepted order got through exactly once, 1 on any loss or duplicate, 3 when
the cluster or PostgreSQL cannot be had.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from bench.chaos.__main__ import CHAOS_SETTINGS
from bench.cluster.control import Cluster, ClusterError
from bench.cluster.layout import Layout
from bench.env import StackPlace

PLACE = StackPlace(database="hub_cluster", queue_prefix="hubcluster", port_base=18520)
LAYOUT = Layout(
    base_dir=Path("var/cluster-chaos").resolve(), prefix="hubchaos", amqp_base=5711, dist_base=25711
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster_chaos", description=__doc__)
    parser.add_argument("--rate", type=float, default=6.0, help="orders per second")
    parser.add_argument("--warmup", type=float, default=12, help="s of orders before the kill")
    parser.add_argument("--down", type=float, default=20, help="s a lost node stays away")
    parser.add_argument(
        "--between", type=float, default=15, help="s from a node's return to the next loss"
    )
    parser.add_argument("--tail", type=float, default=12, help="s of orders after the last return")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--settle-timeout", type=float, default=300)
    parser.add_argument("--keep-cluster", action="store_true", help="leave the nodes running")
    parser.add_argument("--out", type=Path, default=Path("var/cluster-chaos-run"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    PLACE.apply(HUB_BROKER_URL=LAYOUT.broker_url(first=1), **CHAOS_SETTINGS)

    from rich.console import Console

    from bench import state
    from bench.auth import sender_headers
    from bench.chaos.keeper import Keeper
    from bench.chaos.report import verdict_table
    from bench.chaos.verdict import judge
    from bench.cluster.stack import ClusterStack
    from bench.cluster_chaos.run import NodeLosses
    from bench.cluster_chaos.stalls import activity_times, stalls
    from bench.load import Stream
    from hub.db import migrate
    from hub.observability.health import postgres_problem
    from hub.settings import get_settings

    console = Console(width=None if sys.stdout.isatty() else 150)
    settings = get_settings()
    with contextlib.suppress(Exception):  # the check below says what is wrong, and where
        migrate.ensure_database(settings.database_url)
    if problem := postgres_problem(settings):
        console.print(f"[red]{problem}[/red]")
        return 3
    cluster = Cluster(LAYOUT)
    try:
        with console.status("starting a 3-node RabbitMQ cluster ..."):
            up = cluster.up()
    except ClusterError as exc:
        console.print(f"[red]cannot start the local RabbitMQ cluster: {exc}[/red]")
        return 3
    console.print(f"cluster up in {up:.0f} s: {', '.join(LAYOUT.names)}")
    stack = ClusterStack(
        settings,
        args.out / "logs",
        workers=args.workers,
        concurrency=args.concurrency,
        layout=LAYOUT,
    )
    keeper = Keeper(stack)
    losses = NodeLosses(cluster, settings.queue_prefix)
    try:
        state.fresh_database()
        state.purge_queues()  # declares them, while all three nodes run: a replica on each
        with console.status("starting sandbox, workers, relay and API ..."):
            stack.start()
        keeper.start()
        replicas_before = losses.replicas()
        stream = Stream(f"{stack.api_url}/orders", args.rate, sender_headers("cluster"))
        with console.status("orders streaming in; losing nodes ..."):
            stream.start()
            losses.run(
                warmup=args.warmup,
                down=args.down,
                between=args.between,
                tail=args.tail,
                log=console.print,
            )
            stream.stop()
        with console.status("waiting for the hub to settle, then the exactly-once check ..."):
            verdict = judge(stream.accepted_ids(), settle_timeout=args.settle_timeout)
        replicas_after = losses.replicas()
        found_stalls = stalls(losses.windows(), activity_times())
    finally:
        keeper.stop()
        stack.stop()
        with contextlib.suppress(Exception):
            state.purge_queues()
        if not args.keep_cluster:
            cluster.down()
    results: dict[str, Any] = {
        "params": {**vars(args), "out": str(args.out), "settings": CHAOS_SETTINGS},
        "nodes": LAYOUT.names,
        "replicas_before": replicas_before,
        "replicas_after": replicas_after,
        "faults": [f.__dict__ for f in losses.faults],
        "stalls_s": found_stalls,
        "restarts_by_keeper": dict(keeper.restarts),
        "verdict": verdict.to_json(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    console.print(verdict_table(verdict))
    for fault in losses.faults:
        console.print(f"t={fault.at:5.1f}s {fault.kind:<8} {fault.detail}")
    console.print(f"quorum queues before the losses: {replicas_before}")
    console.print(f"and after: {replicas_after}")
    console.print(
        verdict_line(
            verdict.accepted, verdict.statuses, verdict.lost, verdict.doubled, found_stalls
        )
    )
    console.print(
        "[bold green]PASSED: every accepted order once, nothing lost[/bold green]"
        if verdict.passed
        else "[bold red]FAILED: see the disagreements above[/bold red]"
    )
    console.print(f"details: {args.out / 'results.json'}; logs: {args.out / 'logs'}")
    return 0 if verdict.passed else 1


def verdict_line(
    accepted: int,
    statuses: Any,
    lost: int,
    doubled: int,
    found_stalls: dict[str, dict[str, float]],
) -> str:
    parts = [
        f"accepted {accepted}, completed {statuses['completed']}, failed {statuses['failed']}, "
        f"lost {lost}, twice {doubled}"
    ]
    for label, by_activity in found_stalls.items():
        parts.append(
            f"{label}: " + ", ".join(f"{name} {sec:.1f} s" for name, sec in by_activity.items())
        )
    return "verdict: " + " | ".join(parts)


if __name__ == "__main__":
    sys.exit(main())
