"""The only errors tasks ever see from a downstream system: transient (retry) or permanent."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(eq=False)
class DownstreamError(Exception):
    """A downstream system did not do what was asked."""

    system: str
    message: str
    status: int | None = None
    code: str | None = None
    # Seconds the system asked us to wait (from Retry-After), already parsed.
    retry_after: float | None = None

    def __str__(self) -> str:
        where = f"{self.system} HTTP {self.status}" if self.status else self.system
        code = f" [{self.code}]" if self.code else ""
        return f"{where}{code}: {self.message}"

    @property
    def kind(self) -> str:
        return "transient" if isinstance(self, TransientError) else "permanent"


class TransientError(DownstreamError):
    """Worth retrying: timeouts, refused connections, 408/425/429/5xx."""


class PermanentError(DownstreamError):
    """Not worth retrying: validation, out of stock, unknown reservation, auth (other 4xx)."""
