"""``make chaos`` / ``python -m bench.chaos``: a load of orders under a nemesis, then the check.

Exits 0 when every accepted order got through exactly once (or sits in the failure records with
its reason), 1 on any loss or duplicate, 3 when PostgreSQL or RabbitMQ is not there to begin
with.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

# Quicker than the defaults, so that the run settles in minutes: retries capped at 8 s, the
# breaker rests 5 s. Everything else is as in production.
CHAOS_SETTINGS = {
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
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--seed", type=int, default=None, help="replay a run's schedule")
    parser.add_argument("--settle-timeout", type=float, default=300)
    parser.add_argument("--out", type=Path, default=Path("var/chaos"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from bench.env import CHAOS

    CHAOS.apply(**CHAOS_SETTINGS)  # before anything reads the settings

    from rich.console import Console

    from bench import state
    from bench.auth import sender_headers
    from bench.chaos import services
    from bench.chaos.keeper import Keeper
    from bench.chaos.nemesis import Nemesis, NemesisPlan
    from bench.chaos.report import faults_table, verdict_table
    from bench.chaos.verdict import judge
    from bench.load import Stream
    from bench.stack import Stack
    from hub.db import migrate
    from hub.observability.health import problems
    from hub.settings import get_settings

    # Wide enough for the tables when the output goes to a file or a CI log, not a terminal.
    console = Console(width=None if sys.stdout.isatty() else 150)
    settings = get_settings()
    with contextlib.suppress(Exception):  # the check below says what is wrong, and where
        migrate.ensure_database(settings.database_url)
    down = problems(settings)
    for problem in down:
        console.print(f"[red]{problem}[/red]")
    if down:
        return 3
    seed = args.seed if args.seed is not None else int(time.time())
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
    )
    nemesis = Nemesis(stack, keeper, plan)
    try:
        with console.status("starting sandbox, workers, relay and API ..."):
            stack.start()
        keeper.start()
        stream = Stream(f"{stack.api_url}/orders", args.rate, sender_headers("chaos"))
        with console.status(f"{args.seconds:.0f} s of orders under the nemesis (seed {seed}) ..."):
            stream.start()
            nemesis.start()
            time.sleep(args.seconds)
            nemesis.stop()
            stream.stop()
        stack.sandbox.clear_faults()
        services.wait_until_up("rabbitmq")
        services.wait_until_up("postgres")
        with console.status("waiting for the hub to settle, then the exactly-once check ..."):
            verdict = judge(stream.accepted_ids(), settle_timeout=args.settle_timeout)
    finally:
        keeper.stop()
        stack.stop()
        # Purged, never deleted: a retry still parked in celery_delayed_* (shared by every app
        # on the vhost) that comes back to a deleted queue cannot be routed, and RabbitMQ's
        # at-least-once dead-lettering then holds it at the head of the shared delayed queue,
        # blocking everyone's retries behind it.
        state.purge_queues()
    results: dict[str, Any] = {
        "params": {
            "seconds": args.seconds,
            "rate_per_s": args.rate,
            "mean_interval_s": args.mean_interval,
            "rabbitmq_restarts": args.rabbitmq_restarts,
            "postgres_restarts": args.postgres_restarts,
            "flaps": not args.no_flaps,
            "workers": args.workers,
            "processes_per_worker": args.concurrency,
            "seed": seed,
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
    console.print(
        "[bold green]PASSED: every accepted order once, nothing lost[/bold green]"
        if verdict.passed
        else "[bold red]FAILED: see the disagreements above[/bold red]"
    )
    console.print(f"details: {args.out / 'results.json'}; logs: {args.out / 'logs'}; seed {seed}")
    return 0 if verdict.passed else 1


if __name__ == "__main__":
    sys.exit(main())
