"""What the use cases need from the outside world, as protocols (the real ones are wired in
``hub.bootstrap``; tests pass fakes)."""

from __future__ import annotations

import uuid
from typing import Protocol


class PublishError(Exception):
    """The broker did not confirm a publish (down, refused, or too slow)."""


class ChainPublisher(Protocol):
    def publish(self, order_id: uuid.UUID, start_step: str) -> None:
        """Publish the chain from ``start_step``; return only once the broker confirmed it."""
