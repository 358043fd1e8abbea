"""The baseline of the throughput figure: a bare Celery chain of three no-op tasks.

Same ``celery_config`` as the hub (quorum queues on a topic exchange, publisher confirms, acks
late, prefetch 1, JSON, task events), same task names and routing, its own queue prefix; the
tasks do nothing. ``python -m bench.bare --name hubbare-1`` runs one worker of it.
"""

from __future__ import annotations

import argparse
import threading
import time
from typing import Any

from celery import Celery, chain

from hub.broker.celery_config import celery_config
from hub.broker.topology import Topology
from hub.core.pipeline import STEPS, task_name
from hub.settings import Settings, get_settings

BARE_PREFIX = "hubbare"


def bare_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"queue_prefix": BARE_PREFIX})


def noop(order_id: str) -> None:
    """Nothing at all: the cost of the chain itself is what the baseline measures."""


def create_bare_app(settings: Settings) -> Celery:
    app = Celery("bare")
    app.conf.update(celery_config(bare_settings(settings)))
    for step in STEPS:
        app.task(name=task_name(step))(noop)
    return app


def publish_chain(app: Celery, order_id: str) -> None:
    chain(
        *(app.signature(task_name(step), args=(order_id,), immutable=True) for step in STEPS)
    ).apply_async(retry=False)


def declare_and_purge(app: Celery) -> None:
    topology = Topology(BARE_PREFIX)
    with app.connection_for_write() as connection:
        channel = connection.channel()
        for queue in [*topology.work_queues(), topology.failure_queue()]:
            bound = queue.bind(channel)
            bound.declare()
            bound.purge()


class SucceededCounter:
    """Counts ``task-succeeded`` events of the bare workers (hostnames ``hubbare*@``)."""

    def __init__(self, app: Celery) -> None:
        self._app = app
        self._lock = threading.Lock()
        self.count = 0
        self.last_at = 0.0  # time.time() of the newest event counted
        self._receiver: Any = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bare-events", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(15)

    def _on_succeeded(self, event: dict[str, Any]) -> None:
        if str(event.get("hostname", "")).startswith(BARE_PREFIX):
            with self._lock:
                self.count += 1
                self.last_at = max(self.last_at, float(event.get("timestamp") or time.time()))

    def _run(self) -> None:
        with self._app.connection() as connection:
            receiver = self._app.events.Receiver(
                connection, handlers={"task-succeeded": self._on_succeeded}
            )
            # Counting starts once the event queue is bound: nothing published before is lost.
            receiver.on_consume_ready = lambda *_, **__: self._ready.set()
            self._receiver = receiver
            receiver.capture(limit=None, timeout=None, wakeup=False)

    def stop(self) -> None:
        if self._receiver is not None:
            self._receiver.should_stop = True
        self._thread.join(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--name", default=f"{BARE_PREFIX}-1")
    args = parser.parse_args()
    app = create_bare_app(get_settings())
    queues = ",".join(Topology(BARE_PREFIX).queue_name(step) for step in STEPS)
    app.worker_main(
        argv=[
            "worker",
            "-Q",
            queues,
            "--concurrency",
            str(args.concurrency),
            "--hostname",
            f"{args.name}@%h",
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
        ]
    )


if __name__ == "__main__":
    main()
