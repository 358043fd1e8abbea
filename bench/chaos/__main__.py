"""``make chaos`` / ``python -m bench.chaos``: a load of orders (some cancelled) under a
nemesis, then the check.

It runs on a RabbitMQ node and a PostgreSQL cluster of its own (``bench.chaos.services``), which
the nemesis restarts: the machine's are never touched. Exits 0 when every accepted order got
through exactly once (or sits in the failure records with its reason) and every cancelled one
was undone exactly once, 1 on any loss, duplicate or dangling effect, 3 when its own RabbitMQ
node or PostgreSQL cluster could not be started.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from bench.chaos.services import OwnServices

# Quicker than the defaults, so that the run settles in minutes: retries capped at 8 s, the
# breaker rests 5 s. Everything else is as in production, and the warehouse has a limit of
# calls in flight, so that kills and restarts land on workers holding slots (a dead worker's
# come back when their leases lapse).
CHAOS_SETTINGS = {
    "HUB_WAREHOUSE_MAX_IN_FLIGHT": "8",
    "HUB_RETRY__MAX_DELAY": "8",
    "HUB_RETRY__MAX_ATTEMPTS": "12",
    "HUB_BREAKER__COOLDOWN": "5",
    "HUB_RELAY_INTERVAL": "0.2",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__)
    parser.add_argument("--seconds", type=float, default=120, help="how long orders come in")
    parser.add_argument("--rate", type=float, default=6.0, help="orders per second")
    parser.add_argument("--mean-interval", type=float, default=4.0, help="s between faults")
    parser.add_argument("--rabbitmq-restarts", type=int, default=2)
    parser.add_argument("--postgres-restarts", type=int, default=1)
    parser.add_argument("--no-flaps", action="store_true", help="leave the sandbox alone")
    parser.add_argument("--workers", type=int, default=2)
    # Default: the worker's own (the threads pool, 32 threads), the pool operators run.
    parser.add_argument("--concurrency", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None, help="replay a run's schedule")
    parser.add_argument(
        "--cancel-share", type=float, default=0.15, help="share of the orders cancelled (0: none)"
    )
    # A slow ERP, so that some cancels land while a reservation is in flight.
    parser.add_argument("--erp-latency-ms", type=int, default=250)
    parser.add_argument("--settle-timeout", type=float, default=300)
    parser.add_argument("--out", type=Path, default=Path("var/chaos"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from rich.console import Console

    from bench.chaos import services
    from bench.cluster.control import ClusterError
    from bench.env import CHAOS

    # Wide enough for the tables when the output goes to a file or a CI log, not a terminal.
    console = Console(width=None if sys.stdout.isatty() else 150)
    try:
        own = services.OwnServices(CHAOS.port_base, args.out)
        with console.status("starting the run's own PostgreSQL cluster and RabbitMQ node ..."):
            own.up()
    except (services.ServiceError, ClusterError) as exc:
        console.print(f"[red]{exc}[/red]")
        return 3
    try:
        # Before anything reads the settings: the hub on the run's own services.
        CHAOS.apply(
            **CHAOS_SETTINGS, HUB_DATABASE_URL=own.database_url, HUB_BROKER_URL=own.broker_url
        )
        return run(args, own, console)
    finally:
        own.down()


def run(args: argparse.Namespace, own: OwnServices, console: Console) -> int:
    from bench import state
    from bench.auth import sender_headers
    from bench.chaos import services
    from bench.chaos.cancels import Canceller
    from bench.chaos.keeper import Keeper
    from bench.chaos.nemesis import Nemesis, NemesisPlan
    from bench.chaos.report import faults_table, verdict_line, verdict_table
    from bench.chaos.verdict import judge
    from bench.env import CHAOS
    from bench.load import Stream
    from bench.stack import Stack
    from hub.db import migrate
    from hub.observability.health import problems
    from hub.settings import get_settings

    settings = get_settings()
    with contextlib.suppress(Exception):  # the check below says what is wrong, and where
        migrate.ensure_database(settings.database_url)
    down = problems(settings)
    for problem in down:
        console.print(f"[red]{problem}[/red]")
    if down:
        return 3
    seed = args.seed if args.seed is not None else int(time.time())
    baseline = {"erp": {"latency_ms": args.erp_latency_ms}} if args.erp_latency_ms else {}
    state.fresh_database()
    state.purge_queues()
    stack = Stack(settings, args.out / "logs", workers=args.workers, concurrency=args.concurrency)
    keeper = Keeper(stack)
    plan = NemesisPlan(
        mean_interval=args.mean_interval,
        rabbitmq_restarts=args.rabbitmq_restarts,
        postgres_restarts=args.postgres_restarts,
        flaps=not args.no_flaps,
        seed=seed,
        baseline=baseline,
    )
    nemesis = Nemesis(stack, keeper, plan, own)
    try:
        with console.status("starting sandbox, workers, relay and API ..."):
            stack.start()
        for system, faults in baseline.items():
            stack.sandbox.set_faults(system, **faults)
        keeper.start()
        headers = sender_headers("chaos")
        stream = Stream(f"{stack.api_url}/orders", args.rate, headers)
        canceller = Canceller(stack.api_url, stream, headers, share=args.cancel_share, seed=seed)
        with console.status(f"{args.seconds:.0f} s of orders under the nemesis (seed {seed}) ..."):
            stream.start()
            canceller.start()
            nemesis.start()
            time.sleep(args.seconds)
            nemesis.stop()
            stream.stop()
            asked = canceller.stop()
        stack.sandbox.clear_faults()
        services.wait_until_up("rabbitmq")
        services.wait_until_up("postgres")
        with console.status("waiting for the hub to settle, then the exactly-once check ..."):
            verdict = judge(
                stream.accepted_ids(),
                settle_timeout=args.settle_timeout,
                sandbox=stack.sandbox,
                cancels=asked,
            )
    finally:
        keeper.stop()
        stack.stop()
        # The queues are not purged: they live on the run's own node, removed with it.
    results: dict[str, Any] = {
        "params": {
            "seconds": args.seconds,
            "rate_per_s": args.rate,
            "mean_interval_s": args.mean_interval,
            "rabbitmq_restarts": args.rabbitmq_restarts,
            "postgres_restarts": args.postgres_restarts,
            "flaps": not args.no_flaps,
            "workers": args.workers,
            "worker_pool": f"threads x {args.concurrency or 32}",
            "seed": seed,
            "cancel_share": args.cancel_share,
            "erp_latency_ms": args.erp_latency_ms,
            "port_base": CHAOS.port_base,
            "settings": CHAOS_SETTINGS,
        },
        "faults": [f.__dict__ for f in nemesis.faults],
        "fault_errors": nemesis.errors,
        "restarts_by_keeper": dict(keeper.restarts),
        "verdict": verdict.to_json(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    console.print(faults_table(nemesis, keeper))
    console.print(verdict_table(verdict))
    for error in nemesis.errors:
        console.print(f"[yellow]fault not injected: {error}[/yellow]")
    colour = "green" if verdict.passed else "red"
    console.print(f"[bold {colour}]{verdict_line(verdict)}[/bold {colour}]")
    console.print(f"details: {args.out / 'results.json'}; logs: {args.out / 'logs'}; seed {seed}")
    return 0 if verdict.passed else 1


if __name__ == "__main__":
    sys.exit(main())
