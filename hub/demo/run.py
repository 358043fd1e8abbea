"""``make demo``: the whole hub on this machine, a batch of orders, one failure and its replay."""

from __future__ import annotations

import contextlib
import signal
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import requests
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import select

from hub.core.pipeline import STEPS, SYSTEM_OF_STEP
from hub.db import migrate
from hub.db.engine import unit_of_work
from hub.db.models import Order
from hub.demo.context import DemoRun, sample_order
from hub.demo.failure_scene import failure_scene
from hub.demo.processes import ROOT, Supervisor, http_ok
from hub.demo.sandboxes import Sandboxes
from hub.observability.health import problems
from hub.services import keys
from hub.settings import Settings

LOG_DIR = ROOT / "var" / "demo"


def statuses(order_ids: list[str]) -> Counter[str]:
    with unit_of_work() as session:
        rows = session.scalars(
            select(Order.status).where(Order.id.in_([uuid.UUID(i) for i in order_ids]))
        ).all()
    return Counter(rows)


def start_stack(run: DemoRun, supervisor: Supervisor, *, workers: int) -> None:
    control = Sandboxes.from_settings(run.settings)
    busy = [url for url in [*control.urls.values(), run.api_url] if http_ok(url)()]
    if busy:
        raise SystemExit(f"already in use (stop what runs there first): {', '.join(busy)}")
    with run.console.status("starting sandbox systems, workers, relay and API ..."):
        sandbox = supervisor.hub("sandbox", "sandbox")
        supervisor.wait_until(sandbox, http_ok(f"{control.urls['erp']}/_health"))
        worker_children = [supervisor.worker(f"worker{n}") for n in range(1, workers + 1)]
        supervisor.hub("relay", "relay")
        api = supervisor.hub("api", "api")
        supervisor.wait_until(api, http_ok(f"{run.api_url}/healthz"))
        for child in worker_children:
            supervisor.wait_for_log(child, "ready.", timeout=60)
    run.console.print(
        f"[green]up[/green]: sandbox, {workers} workers, relay, API at "
        f"{run.api_url} (logs in {LOG_DIR})"
    )


def post_batch(run: DemoRun, count: int) -> list[str]:
    session = requests.Session()
    session.headers.update(run.auth_headers)
    progress = Progress(
        TextColumn("posting orders"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=run.console,
    )

    def post(n: int) -> str:
        reply = session.post(f"{run.api_url}/orders", json=sample_order(run, n), timeout=10)
        reply.raise_for_status()
        return str(reply.json()["order_id"])

    pool = ThreadPoolExecutor(8)
    with progress:
        task = progress.add_task("post", total=count)
        ids = []
        try:
            for order_id in pool.map(post, range(count)):
                ids.append(order_id)
                progress.advance(task)
        finally:
            # pool.map queued the whole batch up front: on Ctrl-C, drop what is not yet sent
            # rather than wait for it (on a busy machine, minutes for 5000 orders).
            pool.shutdown(wait=False, cancel_futures=True)
    return ids


def wait_for(
    run: DemoRun, order_ids: list[str], *, until: str, timeout: float = 300
) -> Counter[str]:
    progress = Progress(
        TextColumn(f"orders {until}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=run.console,
    )
    deadline = time.monotonic() + timeout
    with progress:
        task = progress.add_task("wait", total=len(order_ids))
        while True:
            counts = statuses(order_ids)
            progress.update(
                task, completed=counts[until] + (counts["failed"] if until != "failed" else 0)
            )
            if counts[until] + counts["failed"] >= len(order_ids) or time.monotonic() > deadline:
                return counts
            time.sleep(0.3)


def summary(run: DemoRun, order_ids: list[str]) -> bool:
    counts = statuses(order_ids)
    effects = Sandboxes.from_settings(run.settings).effects_per_key()
    table = Table(title="demo summary")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_column("expected", justify="right")
    table.add_row("orders posted", str(len(order_ids)), str(len(order_ids)))
    table.add_row("orders completed", str(counts["completed"]), str(len(order_ids)))
    ok = counts["completed"] == len(order_ids)
    for step in STEPS:
        keys = {f"{order_id}:{step}" for order_id in order_ids}
        once = sum(1 for key in keys if effects[step][key] == 1)
        twice = sum(1 for key in keys if effects[step][key] > 1)
        ok = ok and once == len(keys) and twice == 0
        table.add_row(
            f"{SYSTEM_OF_STEP[step]} ledger: one {step} effect", str(once), str(len(keys))
        )
        table.add_row(f"{SYSTEM_OF_STEP[step]} ledger: applied twice", str(twice), "0")
    run.console.print(table)
    return ok


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_demo(settings: Settings, *, orders: int, workers: int, console: Console) -> int:
    with contextlib.suppress(Exception):  # the check below says what is wrong, and where
        migrate.ensure_database(settings.database_url)
    down = problems(settings)
    for problem in down:
        console.print(f"[red]{problem}[/red]")
    if down:
        return 3
    migrate.upgrade(settings.database_url)
    with unit_of_work() as session:
        demo_key = keys.create_key(session, "demo")
    run = DemoRun(settings, console, run_id=time.strftime("%H%M%S"), api_key=demo_key.token)
    supervisor = Supervisor(env={}, log_dir=LOG_DIR)
    # A SIGTERM (from `timeout`, say) stops everything just as Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        start_stack(run, supervisor, workers=workers)
        order_ids = post_batch(run, orders)
        wait_for(run, order_ids, until="completed")

        replayed = failure_scene(run)
        ok = summary(run, order_ids + replayed)
        console.print(
            "[bold green]every order completed, each effect applied once[/bold green]"
            if ok
            else "[bold red]something is off: see the table above[/bold red]"
        )
        return 0 if ok else 1
    except KeyboardInterrupt:
        console.print("interrupted: stopping everything the demo started")
        return 130
    finally:
        supervisor.stop()
        with contextlib.suppress(Exception), unit_of_work() as session:
            keys.revoke_key(session, demo_key.key_id, by="demo")
