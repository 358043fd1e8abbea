"""What the use cases need from the outside world, as protocols (the real ones are wired in
``hub.bootstrap``; tests pass fakes): the broker (here), the downstream systems
(``downstream``)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Protocol


class PublishError(Exception):
    """The broker did not confirm a publish (down, refused, or too slow)."""


class ChainPublisher(Protocol):
    def publish(
        self, order_id: uuid.UUID, steps: Sequence[str], *, compensating: bool = False
    ) -> None:
        """Publish the chain of ``steps`` (the rest of the order's own pipeline, in order; or,
        ``compensating``, the compensations of ``steps``, in the order given); return only once
        the broker confirmed it."""
