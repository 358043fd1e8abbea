"""kombu's ``filesystem://`` transport for trial mode, with one change: a message file appears
whole.

The stock transport creates a message's file and then writes into it. A consumer that lists the
folder in between takes the empty file, cannot decode it, and the message is lost. Here the
message is written under a name no consumer takes (``.part``) and renamed into place, which is
atomic on one file system. Celery uses this class through ``broker_transport``; the URL stays
``filesystem://``.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


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


class Transport(filesystem.Transport):
    Channel = Channel
