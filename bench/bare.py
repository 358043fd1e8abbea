"""The baseline of the throughput figure: a bare Celery chain of three no-op tasks.

Same ``celery_config`` as the hub (quorum queues on a topic exchange, publisher confirms, acks
late, prefetch 1, JSON, no task events), same task names and routing, same worker arguments, its
own queue prefix; the tasks do nothing. ``python -m bench.bare --name hubbare-1`` runs one worker
of it.

Its completions are not counted through task events: the hub sends none (each is a confirmed
publish), so the baseline must not pay for them either. The harness instead polls until the
chains have drained (:func:`drained`).
"""

from __future__ import annotations

import argparse
import socket

from celery import Celery, chain

from hub.broker.celery_config import celery_config
from hub.broker.topology import Topology
from hub.core.registry import task_name
from hub.settings import Settings, get_settings

BARE_PREFIX = "hubbare"


def bare_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"queue_prefix": BARE_PREFIX})


def noop(order_id: str) -> None:
    """Nothing at all: the cost of the chain itself is what the baseline measures."""


def create_bare_app(settings: Settings) -> Celery:
    app = Celery("bare")
    app.conf.update(celery_config(bare_settings(settings)))
    for step in get_settings().pipeline.steps:
        app.task(name=task_name(step))(noop)
    return app


def publish_chain(app: Celery, order_id: str) -> None:
    chain(
        *(
            app.signature(task_name(step), args=(order_id,), immutable=True)
            for step in get_settings().pipeline.steps
        )
    ).apply_async(retry=False)


def declare_and_purge(app: Celery) -> None:
    topology = Topology(BARE_PREFIX)
    with app.connection_for_write() as connection:
        channel = connection.channel()
        for queue in [*topology.work_queues(), topology.failure_queue()]:
            bound = queue.bind(channel)
            bound.declare()
            bound.purge()


def node_name(name: str) -> str:
    """The Celery node name of the bare worker started with ``--name name``."""
    return f"{name}@{socket.gethostname()}"


def _queues_empty(app: Celery) -> bool:
    topology = Topology(BARE_PREFIX)
    with app.connection_for_write() as connection:
        channel = connection.channel()
        for step in get_settings().pipeline.steps:
            _, ready, _ = channel.queue_declare(topology.queue_name(step), passive=True)
            if ready:
                return False
    return True


def _workers_idle(app: Celery, nodes: list[str]) -> bool:
    """No task running or reserved (taken, not yet acked) in any of these workers."""
    inspect = app.control.inspect(destination=nodes, timeout=2.0)
    for reply in (inspect.active(), inspect.reserved()):
        if reply is None or len(reply) < len(nodes) or any(reply.values()):
            return False
    return True


def drained(app: Celery, nodes: list[str]) -> bool:
    """Every chain has run to its end: the three queues are empty and no worker holds a task.

    A message is always somewhere until the chain ends (a task publishes the next one before it
    acks), either ready in a queue or held by a worker. The queues are asked before and after
    the workers, so a message that moves from a queue to a worker between two questions is
    seen. Only the cheap queue question is asked while work is plainly left, so the polling
    costs the workers nothing until the very end.
    """
    return _queues_empty(app) and _workers_idle(app, nodes) and _queues_empty(app)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--name", default=f"{BARE_PREFIX}-1")
    args = parser.parse_args()
    settings = get_settings()
    app = create_bare_app(settings)
    queues = ",".join(
        Topology(BARE_PREFIX).queue_name(step) for step in get_settings().pipeline.steps
    )
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
            settings.log_level,
            "--without-gossip",
            "--without-mingle",
        ]
    )


if __name__ == "__main__":
    main()
