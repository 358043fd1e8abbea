"""``hub doctor``'s checks: what operators get wrong, each found problem with its fix.

No management plugin and no ``rabbitmqctl`` are assumed; everything goes over AMQP:
- existence: passive ``queue.declare`` / ``exchange.declare`` (creates nothing);
- a queue's type and arguments: declaring it again with the hub's arguments, which RabbitMQ
  refuses (406 PRECONDITION_FAILED, nothing changed) when the existing queue differs;
- stranded delayed messages, two ways. Each exchange our delayed retries are routed through
  (ours, ``celery_delayed_delivery``) is checked by passive declare while retries are parked
  in ``celery_delayed_*``: gone, they cannot be routed when due (RabbitMQ 3.10.8 here drops
  them; the sweeper then re-drives their orders). And a message in ``celery_delayed_0`` is
  due to leave within a second (its TTL): if that queue is never empty over a few seconds,
  its head cannot be routed and, where RabbitMQ keeps it (at-least-once dead-lettering), it
  holds up every delayed retry of every application on the vhost;
- processes: workers answer a remote-control command with their hub version and shared
  settings (``hub.observability.identity``).
RabbitMQ policies cannot be read over AMQP; the hub sets what it needs as queue arguments, and
those are checked.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from amqp.exceptions import NotFound, PreconditionFailed
from kombu.connection import Connection
from kombu.entity import Exchange, Queue
from kombu.transport.native_delayed_delivery import (
    CELERY_DELAYED_DELIVERY_EXCHANGE,
    MAX_LEVEL,
    level_name,
)

from hub.broker.depths import QueueDepths
from hub.broker.topology import Topology
from hub.core.registry import REGISTRY

_DELIVERY = Exchange(CELERY_DELAYED_DELIVERY_EXCHANGE, type="topic")


@dataclass(frozen=True)
class Problem:
    check: str
    found: str
    fix: str
    # "advice": worth doing before production, but nothing is wrong now (exit 0).
    severity: Literal["problem", "advice"] = "problem"


# ---- the vhost --------------------------------------------------------------------------------


def vhost_of(broker_url: str) -> str:
    return Connection(broker_url.split(";")[0]).virtual_host or "/"


def check_vhost(broker_url: str) -> list[Problem]:
    """The default vhost '/' is advice, not a problem: it is the only vhost a fresh RabbitMQ
    has (and the hub's default, so the quick start needs no rabbitmqctl), and it does harm only
    when shared, which ``check_neighbours`` reports as a problem when it sees it."""
    vhost = vhost_of(broker_url)
    if vhost != "/":
        return []
    return [
        Problem(
            "vhost",
            "the hub uses RabbitMQ's default vhost '/', which every application gets unless told "
            "otherwise: fine while the hub is alone on it, but another application's parked "
            "retries would share celery_delayed_* with ours, and one that cannot be routed holds "
            "up all the others",
            "give the hub a vhost of its own: rabbitmqctl add_vhost hub; "
            "rabbitmqctl set_permissions -p hub <user> '.*' '.*' '.*'; "
            "HUB_BROKER_URL=amqp://<user>:<pw>@<host>/hub",
            severity="advice",
        )
    ]


def check_neighbours(
    replies: Mapping[str, list[Mapping[str, Any]]], ours: set[str]
) -> list[Problem]:
    """Workers on the vhost that consume queues other than ours: another application (or
    another hub) shares the vhost."""
    strangers = {
        node: sorted(str(q.get("name")) for q in queues if q.get("name") not in ours)
        for node, queues in replies.items()
    }
    return [
        Problem(
            "vhost",
            f"worker {node} consumes {', '.join(names)} on this vhost: another application "
            "shares it (and celery_delayed_*)",
            "move one of the two to a vhost of its own (HUB_BROKER_URL)",
        )
        for node, names in sorted(strangers.items())
        if names
    ]


# ---- the topology ------------------------------------------------------------------------------


class _Channel:
    """Questions by declare; the channel is reopened after each refusal (RabbitMQ closes it on
    404 and 406). Each answer is the refusal, or None."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._channel = connection.channel()

    def _ask(self, question: Callable[[Any], object]) -> Exception | None:
        try:
            question(self._channel)
        except (NotFound, PreconditionFailed) as exc:
            self._channel = self._connection.channel()
            refused: Exception = exc
            return refused
        return None

    def exchange_missing(self, name: str, kind: str) -> bool:
        return self._ask(lambda ch: ch.exchange_declare(name, kind, passive=True)) is not None

    def queue_missing(self, name: str) -> bool:
        return self._ask(lambda ch: ch.queue_declare(name, passive=True)) is not None

    def declare_refused(self, queue: Queue) -> Exception | None:
        """Declaring ``queue`` as the hub does: refused when the existing one differs."""
        # queue_declare only: Queue.declare would also declare (create) its exchange.
        return self._ask(lambda ch: queue.bind(ch).queue_declare())

    def close(self) -> None:
        self._channel.close()


def check_topology(connection: Connection, topology: Topology) -> list[Problem]:
    found: list[Problem] = []
    channel = _Channel(connection)
    for exchange in (topology.exchange, topology.dead_letter_exchange):
        if channel.exchange_missing(exchange.name, exchange.type):
            found.append(
                Problem(
                    "topology",
                    f"exchange {exchange.name} does not exist",
                    "start hub relay (it declares the hub's exchanges and queues), then restart "
                    "the workers (they bind the exchange for delayed retries)",
                )
            )
    for queue in [*topology.work_queues(), topology.failure_queue()]:
        if channel.queue_missing(queue.name):
            found.append(
                Problem(
                    "topology",
                    f"queue {queue.name} does not exist",
                    "start hub relay: it declares the hub's queues",
                )
            )
            continue
        refused = channel.declare_refused(queue)
        if refused is not None:
            found.append(
                Problem(
                    "queue type",
                    f"queue {queue.name} is not what the hub declares (a quorum queue with a "
                    f"delivery limit and dead-lettering): {refused}",
                    f"stop the workers, let {queue.name} drain (and nothing wait for it in "
                    "celery_delayed_*), delete it, and start hub relay to declare it again",
                )
            )
    if channel.exchange_missing(CELERY_DELAYED_DELIVERY_EXCHANGE, "topic"):
        found.append(
            Problem(
                "topology",
                f"exchange {CELERY_DELAYED_DELIVERY_EXCHANGE} does not exist: retries cannot be "
                "delayed in RabbitMQ",
                "start a worker (hub worker): it declares Celery's delayed-delivery queues",
            )
        )
    channel.close()
    return found


# ---- stranded delayed messages ---------------------------------------------------------------

# Messages of the last delayed level live for one second; this many seconds without the queue
# ever being empty means its head is stuck.
STRANDED_WINDOW = 5.0
DELAYED_QUEUES = tuple(level_name(level) for level in range(MAX_LEVEL + 1))


def check_stranded(
    connection: Connection,
    topology: Topology,
    *,
    window: float = STRANDED_WINDOW,
    every: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Problem]:
    """Retries parked for a destination that is gone, and a stuck head of the last level."""
    found: list[Problem] = []
    depths = QueueDepths(connection)
    channel = _Channel(connection)
    try:
        parked = sum(depths.of(name) or 0 for name in DELAYED_QUEUES)
        gone = [
            exchange.name
            for exchange in (topology.exchange, _DELIVERY)
            if channel.exchange_missing(exchange.name, exchange.type)
        ]
        if parked and gone:
            found.append(
                Problem(
                    "stranded delayed messages",
                    f"{parked} retries are parked in celery_delayed_* and exchange "
                    f"{', '.join(gone)}, where delayed retries of this hub are routed, does not "
                    "exist: when they are due they cannot be routed (RabbitMQ drops them, or "
                    "keeps them at the head of celery_delayed_0, holding up every other retry)",
                    "before they are due: start hub relay (it declares the hub's exchange), "
                    "then restart the workers (they bind it to celery_delayed_delivery); "
                    "orders whose retry was lost are re-driven by the sweeper",
                )
            )
        last_level = level_name(0)
        samples = []
        for _ in range(max(2, int(window / every) + 1)):
            samples.append(depths.of(last_level))
            if not samples[-1]:
                return found
            sleep(every)
    finally:
        depths.close()
        channel.close()
    found.append(
        Problem(
            "stranded delayed messages",
            f"{last_level} has held {min(n or 0 for n in samples)}+ messages for {window:.0f}s "
            "although each is due to leave within 1s: the one at its head cannot be routed "
            "(the exchange or queue it is meant for was deleted) and every delayed retry on the "
            "vhost waits behind it",
            "recreate the exchange and queue it is meant for (for the hub: hub relay, then "
            f"restart the workers) so it drains; or purge {last_level} and accept losing the "
            "retries parked in it (the sweeper re-drives the hub's orders); then give each "
            "application its own vhost",
        )
    )
    return found


# ---- processes ------------------------------------------------------------------------------


def check_processes(
    mine: Mapping[str, Any], replies: Mapping[str, Any], *, workers_seen: bool
) -> list[Problem]:
    """Each worker's version and shared settings against this process's."""
    found: list[Problem] = []
    if not workers_seen:
        found.append(
            Problem(
                "workers",
                "no worker of this hub answered",
                "start one: hub worker (make worker)",
            )
        )
    for node, reply in sorted(replies.items()):
        if not isinstance(reply, Mapping) or "version" not in reply:
            found.append(
                Problem(
                    "version",
                    f"worker {node} does not answer hub doctor's question: an older hub",
                    f"upgrade and restart {node}",
                )
            )
            continue
        if reply["version"] != mine["version"]:
            found.append(
                Problem(
                    "version",
                    f"worker {node} runs hub {reply['version']}, this is {mine['version']}",
                    f"upgrade and restart {node} (or this host)",
                )
            )
        theirs = reply.get("settings") or {}
        for name, value in sorted(mine["settings"].items()):
            if theirs.get(name) != value:
                found.append(
                    Problem(
                        "settings",
                        f"worker {node} has {name} = {theirs.get(name)!r}, here it is {value!r}",
                        f"give every process of the hub the same {name} (environment or .env) "
                        "and restart the odd one",
                    )
                )
    return found


def our_queue_names(topology: Topology) -> set[str]:
    return {topology.queue_name(step) for step in REGISTRY.step_names}
