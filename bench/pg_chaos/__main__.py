"""``make pg-chaos`` / ``python -m bench.pg_chaos``: the PostgreSQL primary lost under a load.

A Patroni cluster of its own (three PostgreSQL 15 members with synchronous replication, one
etcd; data in var/pg-chaos/, ports from HUB_PG_CLUSTER_PORT_BASE as ``make pg-cluster-up``'s,
so the two do not run at once), a hub of its own on it (database ``hub``, queue prefix
``hubpgchaos``, ports 18530-18533) through libpq's multi-host URL, the broker from
HUB_BROKER_URL. Orders stream in; the primary is SIGKILLed, Patroni promotes the synchronous
standby, the old primary is started again and rejoins as a standby (pg_rewind); then the new
primary is stopped cleanly (a switchover) and started again. Then the exactly-once check of
``make chaos``, the time without a primary and the time to the first 202 after each loss.

Exits 0 when every accepted order got through exactly once, 1 on any loss or duplicate, 3 when
the cluster or RabbitMQ cannot be had.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from bench.chaos.__main__ import CHAOS_SETTINGS
from bench.env import StackPlace
from bench.pg_cluster.__main__ import default_layout
from bench.pg_cluster.control import PgCluster, PgClusterError
from bench.pg_cluster.layout import PgLayout

PLACE = StackPlace(database="hub", queue_prefix="hubpgchaos", port_base=18530)


def layout() -> PgLayout:
    return PgLayout(base_dir=Path("var/pg-chaos").resolve(), port_base=default_layout().port_base)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.pg_chaos", description=__doc__)
    parser.add_argument("--rate", type=float, default=6.0, help="orders per second")
    parser.add_argument("--warmup", type=float, default=12, help="s of orders before the kill")
    parser.add_argument("--down", type=float, default=15, help="s a lost member stays away")
    parser.add_argument(
        "--between", type=float, default=12, help="s from a member's return to the next loss"
    )
    parser.add_argument("--tail", type=float, default=12, help="s of orders after the last return")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=None)
    parser.add_argument("--settle-timeout", type=float, default=300)
    parser.add_argument("--keep-cluster", action="store_true", help="leave the members running")
    parser.add_argument("--out", type=Path, default=Path("var/pg-chaos-run"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cluster = PgCluster(layout())
    os.environ["HUB_DATABASE_URL"] = cluster.layout.database_url(PLACE.database)
    PLACE.apply(**CHAOS_SETTINGS)

    from rich.console import Console

    from bench import state
    from bench.auth import sender_headers
    from bench.chaos.keeper import Keeper
    from bench.chaos.report import verdict_table
    from bench.chaos.verdict import judge
    from bench.cluster_chaos.__main__ import verdict_line
    from bench.cluster_chaos.stalls import activity_times, stalls
    from bench.load import Stream
    from bench.pg_chaos.run import PrimaryLosses
    from bench.stack import Stack
    from hub.observability.health import rabbitmq_problem
    from hub.settings import get_settings

    console = Console(width=None if sys.stdout.isatty() else 150)
    settings = get_settings()
    if problem := rabbitmq_problem(settings):
        console.print(f"[red]{problem}[/red]")
        return 3
    try:
        with console.status("starting a 3-member Patroni cluster ..."):
            up = cluster.up()
    except PgClusterError as exc:
        console.print(f"[red]cannot start the local Patroni cluster: {exc}[/red]")
        return 3
    names = [m.name for m in cluster.layout.members]
    console.print(f"cluster up in {up:.0f} s: {', '.join(names)}")
    stack = Stack(settings, args.out / "logs", workers=args.workers, concurrency=args.concurrency)
    keeper = Keeper(stack)
    losses = PrimaryLosses(cluster)
    stream: Stream | None = None
    try:
        state.fresh_database()
        state.purge_queues()
        with console.status("starting sandbox, workers, relay and API ..."):
            stack.start()
        keeper.start()
        stream = Stream(f"{stack.api_url}/orders", args.rate, sender_headers("pgchaos"))
        with console.status("orders streaming in; losing the primary ..."):
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
        found_stalls = stalls(losses.windows(), activity_times())
        first_202 = {
            loss.label: round(at - loss.promoted_monotonic, 1)
            if (at := stream.first_accepted_after(loss.promoted_monotonic)) is not None
            else None
            for loss in losses.losses
        }
        answers = api_answers(args.out / "logs")
    finally:
        keeper.stop()
        stack.stop()
        with contextlib.suppress(Exception):
            state.purge_queues()
        if not args.keep_cluster:
            cluster.down()
    results: dict[str, Any] = {
        "params": {**vars(args), "out": str(args.out), "settings": CHAOS_SETTINGS},
        "members": names,
        "synchronous_mode": True,
        "faults": [f.__dict__ for f in losses.faults],
        "losses": [loss.__dict__ for loss in losses.losses],
        "first_202_after_promotion_s": first_202,
        "api_answers": dict(answers),
        "stalls_s": found_stalls,
        "restarts_by_keeper": dict(keeper.restarts),
        "verdict": verdict.to_json(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    console.print(verdict_table(verdict))
    for fault in losses.faults:
        console.print(f"t={fault.at:5.1f}s {fault.kind:<8} {fault.detail}")
    line = verdict_line(verdict.accepted, verdict.statuses, verdict.lost, verdict.doubled, {})
    line += f", accepted-then-missing {verdict.not_found}"
    line += ", answers " + ", ".join(f"{code} x{n}" for code, n in sorted(answers.items()))
    for loss in losses.losses:
        first = first_202[loss.label]
        line += (
            f" | {loss.label}: without a primary {loss.without_primary_s:.1f} s, "
            f"intake stalled {found_stalls[loss.label]['intake']:.1f} s, first 202 "
            f"{'never' if first is None else f'{first:.1f} s'} after the promotion"
        )
    console.print(line)
    server_errors = sum(n for code, n in answers.items() if code >= 500 and code != 503)
    passed = verdict.passed and server_errors == 0
    if server_errors:
        console.print(f"[red]{server_errors} answers were server errors other than 503[/red]")
    console.print(
        "[bold green]PASSED: every accepted order once, nothing lost[/bold green]"
        if passed
        else "[bold red]FAILED: see the disagreements above[/bold red]"
    )
    console.print(f"details: {args.out / 'results.json'}; logs: {args.out / 'logs'}")
    return 0 if passed else 1


def api_answers(log_dir: Path) -> Counter[int]:
    """The status of every answer the API logged (its access log lines carry ``status``)."""
    found: Counter[int] = Counter()
    for log in log_dir.glob("api*.log"):
        for line in log.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if isinstance(record, dict) and isinstance(record.get("status"), int):
                    found[record["status"]] += 1
    return found


if __name__ == "__main__":
    sys.exit(main())
