"""``make demo``: the whole hub on this machine, a batch of orders, one failure and its replay."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor

import requests
from kombu.connection import Connection
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import select

from adapters.tryton.ledger import read_effects
from hub import bootstrap
from hub.broker.depths import QueueDepths
from hub.broker.topology import Topology
from hub.core.registry import REGISTRY
from hub.db import migrate
from hub.db.engine import unit_of_work
from hub.db.models import Order
from hub.demo.change_scene import cancel_scene, correction_scene
from hub.demo.context import DemoRun, post_order, sample_order
from hub.demo.failure_scene import SceneTimeout, failure_scene
from hub.demo.processes import ROOT
from hub.demo.sandboxes import Sandboxes
from hub.demo.stack import HubStack
from hub.observability.health import problems
from hub.observability.tryton_check import tryton_systems
from hub.services import keys
from hub.settings import Settings, get_settings

LOG_DIR = ROOT / "var" / "demo"


def statuses(order_ids: list[str]) -> Counter[str]:
    with unit_of_work() as session:
        rows = session.scalars(
            select(Order.status).where(Order.id.in_([uuid.UUID(i) for i in order_ids]))
        ).all()
    return Counter(rows)


class ForeignHub(Exception):
    """The demo's queues already have consumers the demo did not start: another hub's workers
    would take its orders and run them against their own downstream systems."""


def foreign_consumers(settings: Settings) -> dict[str, int]:
    """Consumers already on the demo's work queues (trial mode's broker has no such count)."""
    if settings.embedded_broker:
        return {}
    topology = Topology.for_settings(settings)
    with Connection(settings.broker_url, connect_timeout=5) as connection:
        depths = QueueDepths(connection)
        try:
            found = {
                name: depths.consumers(name)
                for name in (queue.name for queue in topology.work_queues())
            }
        finally:
            depths.close()
    return {name: n for name, n in found.items() if n}


def start_stack(run: DemoRun, stack: HubStack) -> None:
    if busy := stack.busy():
        raise SystemExit(f"already in use (stop what runs there first): {', '.join(busy)}")
    if taken := foreign_consumers(run.settings):
        listed = ", ".join(f"{name} ({n})" for name, n in sorted(taken.items()))
        raise ForeignHub(
            f"the demo's queues already have consumers it did not start: {listed}. Another "
            "hub's workers would take the demo's orders; run the demo on a place of its own "
            "(HUB_QUEUE_PREFIX, HUB_DATABASE_URL and ports of its own), or HUB_TRIAL=true"
        )
    systems = ", ".join(stack.systems)
    with run.console.status(f"starting sandbox systems ({systems}), workers, relay and API ..."):
        stack.start()
    run.console.print(
        f"[green]up[/green]: sandbox ({systems}), {stack.workers} workers, relay, API at "
        f"{run.api_url} (logs in {LOG_DIR})"
    )


def post_batch(run: DemoRun, count: int) -> list[str]:
    session = requests.Session()
    progress = Progress(
        TextColumn("posting orders"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=run.console,
    )

    def post(n: int) -> str:
        return post_order(session, run, sample_order(run, n))

    pool = ThreadPoolExecutor(8)
    with progress:
        task = progress.add_task("post", total=count)
        ids = []
        try:
            for order_id in pool.map(post, range(count)):
                _stop_if_interrupted()
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
        # A failed order is not done: the bar counts only what reached ``until``.
        TextColumn("[red]{task.fields[failed]} failed[/red]"),
        TimeElapsedColumn(),
        console=run.console,
    )
    deadline = time.monotonic() + timeout
    with progress:
        task = progress.add_task("wait", total=len(order_ids), failed=0)
        while True:
            _stop_if_interrupted()
            counts = statuses(order_ids)
            progress.update(task, completed=counts[until], failed=counts["failed"])
            if counts[until] + counts["failed"] >= len(order_ids) or time.monotonic() > deadline:
                return counts
            time.sleep(0.3)


def tryton_effects(order_ids: list[str]) -> dict[str, Counter[str]]:
    """Per system, how many effects Tryton holds for each order (sales with their stock
    assigned, shipments done, invoices posted), read from Tryton itself."""
    found: dict[str, Counter[str]] = {}
    for effect in read_effects(bootstrap.tryton_workflow().rpc, only=order_ids):
        found.setdefault(effect.system, Counter())[effect.order_id] += 1
    return found


TRYTON_RECORDS = {"erp": "sales", "warehouse": "shipments done", "accounting": "invoices posted"}


def summary(run: DemoRun, order_ids: list[str]) -> bool:
    counts = statuses(order_ids)
    effects = Sandboxes.from_settings(run.settings).effects_per_key()
    on_tryton = tryton_effects(order_ids) if tryton_systems(run.settings) else {}
    table = Table(title="demo summary")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_column("expected", justify="right")
    table.add_row("orders posted", str(len(order_ids)), str(len(order_ids)))
    table.add_row("orders completed", str(counts["completed"]), str(len(order_ids)))
    ok = counts["completed"] == len(order_ids)
    for step in get_settings().pipeline.steps:
        system = REGISTRY.system_of(step)
        if run.settings.system(system).adapter == "tryton":
            per_order = on_tryton.get(system, Counter())
            once = sum(1 for order_id in order_ids if per_order[order_id] == 1)
            twice = sum(1 for order_id in order_ids if per_order[order_id] > 1)
            ok = ok and once == len(order_ids) and twice == 0
            what = TRYTON_RECORDS[system]
            table.add_row(
                f"Tryton ({system}): {what}, one per order", str(once), str(len(order_ids))
            )
            table.add_row(f"Tryton ({system}): orders with more than one", str(twice), "0")
            continue
        keys = {f"{order_id}:{step}" for order_id in order_ids}
        once = sum(1 for key in keys if effects[step][key] == 1)
        twice = sum(1 for key in keys if effects[step][key] > 1)
        ok = ok and once == len(keys) and twice == 0
        table.add_row(
            f"{REGISTRY.system_of(step)} ledger: one {step} effect", str(once), str(len(keys))
        )
        table.add_row(f"{REGISTRY.system_of(step)} ledger: applied twice", str(twice), "0")
    if "notify" in run.settings.pipeline.steps:
        ok = mail_rows(run, table, order_ids) and ok
    run.console.print(table)
    return ok


def customer_emails(order_ids: list[str]) -> dict[str, str]:
    with unit_of_work() as session:
        rows = session.execute(
            select(Order.id, Order.customer).where(Order.id.in_([uuid.UUID(i) for i in order_ids]))
        ).all()
    return {str(order_id): str(customer.get("email", "")) for order_id, customer in rows}


def mail_rows(run: DemoRun, table: Table, order_ids: list[str]) -> bool:
    """The notify step's proof: each order's customer got exactly one e-mail, read from the
    SMTP sandbox's ledger (one entry per distinct Message-ID, with its recipients)."""
    sent: dict[str, list[list[str]]] = {}
    for effect in Sandboxes.from_settings(run.settings).ledger("smtp")["effects"]:
        sent.setdefault(str(effect["idempotency_key"]), []).append(list(effect["to"]))
    customers = customer_emails(order_ids)
    once = sum(1 for o, email in customers.items() if sent.get(f"{o}:notify") == [[email]])
    table.add_row("e-mails: one to each order's customer", str(once), str(len(order_ids)))
    return once == len(order_ids)


# Set by the signal handler too: a KeyboardInterrupt raised while the main thread runs a
# garbage collector's weakref callback is printed and ignored, so the loops check this as well.
_interrupted = threading.Event()


def _interrupt(signum: int, frame: object) -> None:
    _interrupted.set()
    raise KeyboardInterrupt


def _stop_if_interrupted() -> None:
    if _interrupted.is_set():
        raise KeyboardInterrupt


def run_demo(
    settings: Settings,
    *,
    orders: int,
    workers: int,
    console: Console,
    set_stock: Callable[[Mapping[str, int]], None] | None = None,
    scarce_sku: str | None = None,
) -> int:
    """The demo; ``set_stock`` and ``scarce_sku`` name a real ERP's stock (Tryton's) when the
    ERP is not the sandbox."""
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
    run = DemoRun(
        settings,
        console,
        run_id=time.strftime("%H%M%S"),
        api_key=demo_key.token,
        set_stock=set_stock,
        **({"scarce_sku": scarce_sku} if scarce_sku else {}),
    )
    stack = HubStack(settings, LOG_DIR, workers=workers)
    # A SIGTERM (from `timeout`, say) stops everything just as Ctrl-C does.
    _interrupted.clear()
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    try:
        start_stack(run, stack)
        order_ids = post_batch(run, orders)
        wait_for(run, order_ids, until="completed")

        cancelled_ok = True
        try:
            replayed = failure_scene(run)
            cancelled_ok = cancel_scene(run)
            replayed += correction_scene(run)
        except SceneTimeout as stuck:  # said, then the summary shows where things stand
            console.print(f"[red]{escape(str(stuck))}[/red]")
            replayed = stuck.order_ids
            cancelled_ok = False
        ok = summary(run, order_ids + replayed) and cancelled_ok
        console.print(
            "[bold green]every order completed, each effect applied once[/bold green]"
            if ok
            else "[bold red]something is off: see the table above[/bold red]"
        )
        return 0 if ok else 1
    except ForeignHub as refused:
        console.print(f"[red]{escape(str(refused))}[/red]")
        console.print("[red]nothing was posted[/red]")
        return 4
    except KeyboardInterrupt:
        console.print("interrupted: stopping everything the demo started")
        return 130
    finally:
        stack.stop()
        with contextlib.suppress(Exception), unit_of_work() as session:
            keys.revoke_key(session, demo_key.key_id, by="demo")
