"""kombu's ``filesystem://`` transport for trial mode, where its folders are, and two changes:
a message file appears whole, and two processes binding at once both stay bound.

The stock transport creates a message's file and then writes into it. A consumer that lists the
folder in between takes the empty file, cannot decode it, and the message is lost. Here the
message is written under a name no consumer takes (``.part``) and renamed into place, which is
atomic on one file system.

The stock binding opens a new exchange's table with ``"wb"``, which truncates before it locks:
two workers starting together and binding their remote-control queues to ``celery.pidbox``
leave one binding, or a table with a stale tail that no longer decodes, and that worker never
hears a broadcast (Flower's inspect, ``celery inspect ping``). Here the table is created
without truncation and read, changed and rewritten under its lock.

Celery uses this class through ``broker_transport``; the URL stays ``filesystem://``.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

from hub.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


class Channel(filesystem.Channel):
    # kombu's own base classes disagree on the name of the second parameter; this one is the
    # filesystem transport's, whose method this replaces.
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]
        # The stock name: a consumer takes the oldest first and matches on ".<queue>.msg".
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = f"{final}.part"
        try:
            with open(partial, "wb") as file:
                file.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc

    def _table_file(self, exchange: str) -> Path:
        # kombu's check of the name (no path outside the control folder), untyped there.
        file: Path = self._exchange_file(exchange)  # type: ignore[no-untyped-call]
        return file

    def get_table(self, exchange: str) -> list[filesystem.exchange_queue_t]:
        file = self._table_file(exchange)
        try:
            with file.open("rb") as table:
                filesystem.lock(table, filesystem.LOCK_SH)
                try:
                    return _bindings(table.read())
                finally:
                    filesystem.unlock(table)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise ChannelError(f"Cannot open {file}") from exc

    def _queue_bind(self, exchange: str, routing_key: str, pattern: str, queue: str) -> None:
        file = self._table_file(exchange)
        self.control_folder.mkdir(exist_ok=True)
        binding = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        try:
            descriptor = os.open(file, os.O_RDWR | os.O_CREAT, 0o644)
            with os.fdopen(descriptor, "rb+", buffering=0) as table:
                filesystem.lock(table, filesystem.LOCK_EX)
                try:
                    bindings = _bindings(table.read())
                    if binding not in bindings:
                        bindings.insert(0, binding)
                        table.seek(0)
                        table.write(str_to_bytes(dumps(bindings)))
                        table.truncate()
                finally:
                    filesystem.unlock(table)
        except OSError as exc:
            raise ChannelError(f"Cannot open {file}") from exc


def _bindings(raw: bytes) -> list[filesystem.exchange_queue_t]:
    # Empty: just created by a binder that has not taken the lock yet, so no bindings so far.
    if not raw.strip():
        return []
    return [filesystem.exchange_queue_t(*row) for row in loads(bytes_to_str(raw))]


class Transport(filesystem.Transport):
    Channel = Channel


@dataclass(frozen=True)
class BrokerFolders:
    """Where the filesystem:// broker keeps messages; every process must see the same ones."""

    root: Path

    @property
    def queue(self) -> Path:
        return self.root / "queue"

    @property
    def processed(self) -> Path:
        return self.root / "processed"

    @property
    def control(self) -> Path:
        return self.root / "control"

    def all(self) -> tuple[Path, ...]:
        return (self.queue, self.processed, self.control)


def trial_root(settings: Settings) -> Path:
    return (ROOT / settings.trial_dir).resolve()  # an absolute trial_dir stays as it is


def broker_folders(settings: Settings) -> BrokerFolders:
    return BrokerFolders(trial_root(settings) / "broker")


def transport_options(settings: Settings) -> dict[str, Any]:
    """kombu filesystem:// options: producers and consumers share one queue folder."""
    folders = broker_folders(settings)
    return {
        "data_folder_in": str(folders.queue),
        "data_folder_out": str(folders.queue),
        # A consumer takes a message by renaming its file into this folder: on one file system
        # that is atomic, so two workers never take the same one (the default, the temp
        # folder, may be another file system, where the move is a copy).
        "store_processed": True,
        "processed_folder": str(folders.processed),
        "control_folder": str(folders.control),
        # How often an idle consumer looks for new files; each hop of a chain waits this long.
        "polling_interval": 0.1,
    }


def make_broker_folders(settings: Settings) -> None:
    for folder in broker_folders(settings).all():
        folder.mkdir(parents=True, exist_ok=True)
