"""At the end of a session, delete the queues and exchanges the suite declared on the broker.

The machine's RabbitMQ has few file descriptors (about 900) and every quorum queue keeps some:
queues left behind by test runs pile up until the broker stops accepting connections. So the
suite removes what it made, and only that:

- queues and exchanges named after its queue prefix (``<prefix>``, ``<prefix>.inventory``,
  ``<prefix>.dlx``, ``<prefix>.control.pidbox``, ``<prefix>-worker1@host...``) and after the
  prefixes derived from it (``<prefix>demo``: the demo test's own hub);
- Celery's delayed-delivery topology (``celery_delayed_0..27``, ``celery_delayed_delivery``),
  which every prefix of a vhost shares, only when the vhost is not ``/`` and nothing of another
  prefix is left in it: a second suite (or a hub) on the same vhost keeps its retry delays.
  Where those stay and hold messages, nothing is deleted (see ``clean``).

The names are listed with the machine's ``rabbitmqctl`` (AMQP cannot list queues); without it
the suite's own names are deleted by name and the shared delayed topology is left alone.
Deletion itself goes over AMQP with the tests' credentials.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from amqp.exceptions import ChannelError
from kombu.connection import Connection

from hub.broker.topology import Topology

# Prefixes the suite derives from its own on the tests' broker: tests/e2e/test_demo.py runs the
# demo on "<prefix>demo", tests/e2e/test_pg_failover_slice.py a hub on "<prefix>p",
# tests/integration/test_doctor.py a wrong queue on "<prefix>odd". (The chaos and cluster slices'
# "<prefix>k" and "<prefix>c" live on RabbitMQ nodes of their own.)
DERIVED_SUFFIXES = ("", "demo", "p", "odd")
DELAYED = re.compile(r"celery_delayed_(\d+|delivery)")


@dataclass
class Removed:
    vhost: str
    queues: list[str] = field(default_factory=list)
    exchanges: list[str] = field(default_factory=list)
    kept_delayed: str = ""  # why the shared delayed topology stayed, if it did
    listed: bool = True  # False: rabbitmqctl could not list the vhost, known names were used
    over_ctl: bool = False  # True: AMQP refused (a broker out of descriptors), rabbitmqctl deleted

    def summary(self) -> str:
        said = (
            f"broker clean-up (vhost {self.vhost!r}): deleted {len(self.queues)} queue(s) and "
            f"{len(self.exchanges)} exchange(s) the suite declared"
        )
        if not self.listed:
            said += " (rabbitmqctl unavailable: deleted by known names)"
        if self.over_ctl:
            said += " (AMQP refused: queues deleted with rabbitmqctl, exchanges left)"
        if self.kept_delayed:
            said += f"; kept celery_delayed_*: {self.kept_delayed}"
        return said


def vhost_of(broker_url: str) -> str:
    path = urlsplit(broker_url).path
    return unquote(path[1:]) if len(path) > 1 else "/"


def is_ours(name: str, prefix: str) -> bool:
    """A queue or exchange named after the suite's prefix (or a prefix derived from it)."""
    name = name.removeprefix("reply.")  # Celery's reply exchange: reply.<prefix>.control.pidbox
    for suffix in DERIVED_SUFFIXES:
        own = prefix + suffix
        if name == own or (name.startswith(own) and name[len(own)] in ".-@"):
            return True
    return False


def list_names(kind: str, vhost: str) -> list[str] | None:
    """``rabbitmqctl list_<kind> -p <vhost> name``; None when rabbitmqctl cannot answer."""
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        return None
    try:
        done = subprocess.run(
            [ctl, f"list_{kind}", "-p", vhost, "name", "--formatter", "json"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            return None
        return [str(row["name"]) for row in json.loads(done.stdout or "[]")]
    except (OSError, subprocess.TimeoutExpired, ValueError, KeyError, TypeError):
        return None


def known_names(prefix: str) -> tuple[list[str], list[str]]:
    """The suite's own queues and exchanges by name, for a broker rabbitmqctl cannot list."""
    queues: list[str] = []
    exchanges: list[str] = []
    for suffix in DERIVED_SUFFIXES:
        topology = Topology(prefix + suffix)
        queues += [q.name for q in topology.work_queues()] + [topology.failure_queue_name]
        own = prefix + suffix
        exchanges += [own, f"{own}.dlx", f"{own}.control.pidbox", f"{own}.events"]
        exchanges.append(f"reply.{own}.control.pidbox")
    return queues, exchanges


def clean(broker_url: str, prefix: str) -> Removed:
    """Delete what the suite declared on ``broker_url`` under ``prefix``; say what went."""
    vhost = vhost_of(broker_url)
    queues = list_names("queues", vhost)
    exchanges = list_names("exchanges", vhost)
    try:
        Connection(broker_url, connect_timeout=5).ensure_connection(max_retries=1).release()
    except Exception:
        if queues is None or exchanges is None:
            raise
        # A broker out of file descriptors takes no new AMQP connection, and its quorum queues
        # are what hold them: rabbitmqctl (no AMQP socket) deletes the queues then.
        return _clean_with_ctl(vhost, prefix, queues, exchanges)
    with Connection(broker_url, connect_timeout=5) as connection:
        if queues is None or exchanges is None:
            removed = Removed(vhost, listed=False, kept_delayed="the vhost could not be listed")
            mine_q, mine_x = known_names(prefix)
            parked = _parked(connection, [f"celery_delayed_{n}" for n in range(28)])
        else:
            parked = _parked(connection, [q for q in queues if DELAYED.fullmatch(q)])
            removed, mine_q, mine_x = choose(vhost, prefix, queues, exchanges)
        if removed.kept_delayed and parked:
            # A retry parked in the shared delayed queues comes back through our exchange to our
            # queue: deleted, it could not be routed, and RabbitMQ's at-least-once
            # dead-lettering would hold it at the head of the delayed queue, blocking the
            # retries of everyone on the vhost behind it. Leave everything; a later run cleans.
            removed.kept_delayed += f"; nothing deleted: {parked} message(s) parked in them"
            return removed
        removed.queues = _delete(connection, "queue", mine_q)
        removed.exchanges = _delete(connection, "exchange", mine_x)
    return removed


def choose(
    vhost: str, prefix: str, queues: list[str], exchanges: list[str]
) -> tuple[Removed, list[str], list[str]]:
    """Of the vhost's queues and exchanges, those to delete (see the module's docstring)."""
    removed = Removed(vhost)
    mine_q = [q for q in queues if is_ours(q, prefix)]
    mine_x = [x for x in exchanges if is_ours(x, prefix)]
    others = [q for q in queues if not is_ours(q, prefix) and not DELAYED.fullmatch(q)]
    if vhost == "/":
        removed.kept_delayed = "the default vhost is shared"
    elif others:
        removed.kept_delayed = f"{len(others)} queue(s) of others in the vhost ({others[0]}...)"
    else:
        mine_q += [q for q in queues if DELAYED.fullmatch(q)]
        mine_x += [x for x in exchanges if DELAYED.fullmatch(x)]
    return removed, mine_q, mine_x


def _clean_with_ctl(vhost: str, prefix: str, queues: list[str], exchanges: list[str]) -> Removed:
    removed, mine_q, _ = choose(vhost, prefix, queues, exchanges)
    removed.over_ctl = True
    ctl = shutil.which("rabbitmqctl") or "rabbitmqctl"
    if removed.kept_delayed:
        listed = _ctl(ctl, "list_queues", "-p", vhost, "name", "messages", "--formatter", "json")
        rows = json.loads(listed or "[]")
        parked = sum(int(r.get("messages") or 0) for r in rows if DELAYED.fullmatch(r["name"]))
        if parked:
            removed.kept_delayed += f"; nothing deleted: {parked} message(s) parked in them"
            return removed
    for name in mine_q:
        if _ctl(ctl, "delete_queue", "-p", vhost, name) is not None:
            removed.queues.append(name)
    return removed


def _ctl(ctl: str, *args: str) -> str | None:
    """rabbitmqctl's output, or None when it failed."""
    try:
        done = subprocess.run([ctl, *args], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def _parked(connection: Connection, delayed: list[str]) -> int:
    """Messages waiting in these delayed queues (a missing queue counts none)."""
    total = 0
    for name in delayed:
        channel = connection.channel()  # a missing queue closes the channel it was asked on
        try:
            _, messages, _ = channel.queue_declare(name, passive=True)
            total += int(messages)
        except ChannelError:
            pass
        finally:
            with contextlib.suppress(Exception):
                channel.close()
    return total


def _delete(connection: Connection, kind: str, names: Iterable[str]) -> list[str]:
    gone: list[str] = []
    for name in names:
        # A missing exchange closes the channel it was asked on: one channel per deletion.
        channel = connection.channel()
        try:
            if kind == "queue":
                # Passive first: deleting a missing queue succeeds silently, and we report
                # only what was there.
                channel.queue_declare(name, passive=True)
                channel.queue_delete(name)
            else:
                channel.exchange_declare(name, "topic", passive=True)
                channel.exchange_delete(name)
            gone.append(name)
        except ChannelError:
            pass  # not there (known-name fallback) or went meanwhile
        finally:
            with contextlib.suppress(Exception):  # a channel the broker closed is gone already
                channel.close()
    return gone
