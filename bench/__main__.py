"""``make bench`` / ``python -m bench``: the hub's figures against baselines of the same run."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

FIGURES = (
    "throughput",
    "flaky",
    "slow",
    "quota",
    "latency",
    "scrape",
    "outage",
    "memory",
    "intake",
    "keepalive",
    "history",
    "tryton",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--only", default=",".join(FIGURES), help="figures to run, comma-separated")
    parser.add_argument("--orders", type=int, default=1000, help="a: orders in the batch")
    parser.add_argument("--clients", type=int, default=8, help="a: concurrent senders")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (Celery nodes)")
    parser.add_argument("--concurrency", type=int, default=2, help="pool processes per worker")
    parser.add_argument("--latency-requests", type=int, default=300, help="b: per scenario")
    parser.add_argument("--latency-rate", type=float, default=25.0, help="b: requests/s")
    parser.add_argument("--latency-clients", type=int, default=32, help="b: senders at most")
    parser.add_argument("--erp-latency-ms", type=int, default=500, help="b: slow ERP")
    parser.add_argument("--scrapers", type=int, default=32, help="m: clients on /metrics")
    parser.add_argument("--rate", type=float, default=8.0, help="c: orders/s of the stream")
    parser.add_argument("--outage", type=float, default=30.0, help="c: seconds the ERP is down")
    parser.add_argument("--backlog-orders", type=int, default=2000, help="d: orders waiting")
    parser.add_argument("--retry-after", type=int, default=60, help="d: the ERP's Retry-After")
    parser.add_argument("--flaky-orders", type=int, default=300, help="f: orders per batch")
    parser.add_argument("--slow-orders", type=int, default=300, help="g, h: orders per batch")
    parser.add_argument("--quota-latency-ms", type=int, default=250, help="h: the ERP's answer")
    parser.add_argument("--intake-requests", type=int, default=2000, help="e: per server")
    parser.add_argument("--intake-clients", type=int, default=8, help="e: closed-loop senders")
    parser.add_argument("--keepalive-posts", type=int, default=300, help="k: POSTs per server")
    parser.add_argument(
        "--history-orders", type=int, default=5_000_000, help="i: completed orders of history"
    )
    parser.add_argument("--history-months", type=int, default=12, help="i: months they span")
    parser.add_argument("--tryton-orders", type=int, default=30, help="j: orders via the hub")
    parser.add_argument(
        "--tryton-sequential", type=int, default=10, help="j: orders one at a time, Tryton alone"
    )
    parser.add_argument("--out", type=Path, default=Path("var/bench"), help="results directory")
    parser.add_argument(
        "--chart", type=Path, default=None, help="also write the chart here (make docs-figures)"
    )
    args = parser.parse_args(argv)
    unknown = set(args.only.split(",")) - set(FIGURES)
    if unknown:
        parser.error(f"unknown figures {sorted(unknown)}; pick from {', '.join(FIGURES)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from bench.env import BENCH, OPERATOR

    # Before anything reads the settings; a login for the operator pages of row i.
    BENCH.apply(HUB_OPERATOR_USER=OPERATOR[0], HUB_OPERATOR_PASSWORD=OPERATOR[1])

    from rich.console import Console

    from bench import (
        flaky,
        history,
        intake,
        keepalive,
        latency,
        memory,
        outage,
        quota,
        scrape,
        slow,
        state,
        throughput,
    )
    from bench.chart import outage_chart
    from bench.report import table
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
    only = args.only.split(",")
    # Row j alone leaves the sandbox stack's database and queues as they are.
    on_sandboxes = bool(set(only) - {"tryton"})
    if on_sandboxes:
        state.fresh_database()
        state.purge_queues()
    # Rows a-f run prefork workers of --concurrency processes, as they did before the threads
    # pool became the default (their baselines, the bare chain among them, are prefork too);
    # rows g and h run the default worker.
    stack = Stack(
        settings,
        args.out / "logs",
        workers=args.workers,
        concurrency=args.concurrency,
        pool="prefork",
    )
    results: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
        "stack": {
            "database": settings.database_url.rsplit("/", 1)[-1],
            "queue_prefix": settings.queue_prefix,
            "api": f"{settings.api_host}:{settings.api_port}",
            "workers": args.workers,
            "processes_per_worker": args.concurrency,
        },
    }
    started = time.monotonic()
    try:
        if on_sandboxes:  # j runs on a stack of its own
            with console.status("starting sandbox, workers, relay and API ..."):
                stack.start()
        if "throughput" in only:
            with console.status(f"a. throughput: {args.orders} orders, then the bare chain ..."):
                results["throughput"] = throughput.measure(
                    stack,
                    throughput.ThroughputParams(
                        orders=args.orders,
                        clients=args.clients,
                        workers=args.workers,
                        concurrency=args.concurrency,
                    ),
                )
        if "flaky" in only:
            with console.status(f"f. ERP failing half its calls: 2 x {args.flaky_orders} orders"):
                results["flaky"] = flaky.measure(
                    stack,
                    flaky.FlakyParams(
                        orders=args.flaky_orders,
                        clients=args.clients,
                        workers=args.workers,
                        concurrency=args.concurrency,
                    ),
                )
        if "slow" in only:
            with console.status(f"g. every system at 250 ms: 2 x {args.slow_orders} orders ..."):
                results["slow"] = slow.measure(
                    stack, slow.SlowParams(orders=args.slow_orders, clients=args.clients)
                )
        if "quota" in only:
            with console.status(f"h. ERP allowing 4 calls at once: {args.slow_orders} orders"):
                results["quota"] = quota.measure(
                    stack,
                    quota.QuotaParams(
                        orders=args.slow_orders,
                        clients=args.clients,
                        latency_ms=args.quota_latency_ms,
                    ),
                )
        # c before b: the ERP outage of b leaves retries parked for a few seconds, which would
        # land in c's queues; d comes last, its retries are parked for minutes.
        if "outage" in only:
            with console.status(f"c. outage: ERP down for {args.outage:.0f} s under a stream ..."):
                results["outage"] = outage.measure(
                    stack,
                    outage.OutageParams(rate=args.rate, before=10, outage=args.outage, after=20),
                )
        if "latency" in only:
            with console.status("b. intake latency: ERP slow, ERP down; hub and baseline ..."):
                results["latency"] = latency.measure(
                    stack,
                    latency.LatencyParams(
                        requests=args.latency_requests,
                        rate=args.latency_rate,
                        clients=args.latency_clients,
                        erp_latency_ms=args.erp_latency_ms,
                    ),
                    baseline_port=int(settings.api_port) + 4,
                )
        if "scrape" in only:
            with console.status(f"m. intake latency with {args.scrapers} clients on /metrics ..."):
                results["scrape"] = scrape.measure(
                    stack,
                    scrape.ScrapeParams(
                        requests=args.latency_requests,
                        rate=args.latency_rate,
                        clients=args.latency_clients,
                        scrapers=args.scrapers,
                    ),
                )
        if "memory" in only:
            with console.status(f"d. memory: {args.backlog_orders} orders waiting ..."):
                results["memory"] = memory.measure(
                    stack,
                    memory.MemoryParams(orders=args.backlog_orders, retry_after=args.retry_after),
                )
        if "keepalive" in only:
            with console.status(f"k. keep-alive: {args.keepalive_posts} POSTs to the sandbox ..."):
                results["keepalive"] = keepalive.measure(
                    keepalive.KeepAliveParams(posts=args.keepalive_posts)
                )
        if "history" in only:
            with console.status(f"i. history: {args.history_orders} orders of history ..."):
                results["history"] = history.measure(
                    stack,
                    history.HistoryParams(orders=args.history_orders, months=args.history_months),
                )
        # Last: it stops the workers, so that the API has the machine as its baseline does.
        if "intake" in only:
            with console.status(f"e. intake capacity: {args.intake_clients} closed-loop senders"):
                results["intake"] = intake.measure(
                    stack,
                    intake.IntakeParams(requests=args.intake_requests, clients=args.intake_clients),
                    baseline_port=int(settings.api_port) + 4,
                )
    finally:
        stack.stop()
        # Purged, never deleted: a retry still parked in celery_delayed_* (shared by every app
        # on the vhost) that comes back to a deleted queue cannot be routed, and RabbitMQ's
        # at-least-once dead-lettering then holds it at the head of the shared delayed queue,
        # blocking everyone's retries behind it.
        if on_sandboxes:
            state.purge_queues()
    # Last, on a stack and a Tryton of its own (it changes the process's HUB_* settings).
    if "tryton" in only:
        from bench import tryton

        with console.status(f"j. Tryton: {args.tryton_orders} orders via the hub, then alone"):
            results["tryton"] = tryton.measure(
                args.out / "logs-tryton",
                tryton.TrytonParams(
                    orders=args.tryton_orders,
                    sequential_orders=args.tryton_sequential,
                    clients=args.clients,
                    workers=args.workers,
                ),
            )
    results["seconds"] = round(time.monotonic() - started, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    console.print(table(results))
    if "outage" in results:
        charts = [args.out / "outage.png", *([args.chart] if args.chart else [])]
        outage_chart(results["outage"], charts)
        console.print(f"chart of the outage run: {' and '.join(map(str, charts))}")
    console.print(f"results: {args.out / 'results.json'} ({results['seconds']} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
