"""The only errors tasks ever see from a downstream system: transient (retry) or permanent."""

from __future__ import annotations

from dataclasses import dataclass

from hub.core.stored_text import CODE_CHARS, storable


@dataclass(eq=False)
class DownstreamError(Exception):
    """A downstream system did not do what was asked."""

    system: str
    message: str
    status: int | None = None
    code: str | None = None
    # Seconds the system asked us to wait (from Retry-After), already parsed.
    retry_after: float | None = None
    # `status` is what an HTTP adapter saw, kept for the operator; decisions read the type
    # (transient or permanent), `code`, `retry_after` and `system_down`, never the status.

    def __post_init__(self) -> None:
        # The code and message are a downstream's words, kept in failure records: without NUL
        # and with the code within its column (hub.core.stored_text), whoever raised this.
        self.message = storable(self.message)
        if self.code is not None:
            self.code = storable(self.code, CODE_CHARS) or None

    def __str__(self) -> str:
        where = f"{self.system} HTTP {self.status}" if self.status else self.system
        code = f" [{self.code}]" if self.code else ""
        return f"{where}{code}: {self.message}"

    @property
    def kind(self) -> str:
        return "transient" if isinstance(self, TransientError) else "permanent"


@dataclass(eq=False)
class TransientError(DownstreamError):
    """Worth retrying: timeouts, refused connections, 408/425/429/5xx."""

    # Whether the failure says the system itself is unwell (no answer, a 5xx): only those count
    # against its breaker. A 429 is the system working as designed; it says False.
    system_down: bool = True
    # The system said "too many requests" (its quota, a 429): every caller slows down
    # (hub.core.limits), not only this one.
    throttled: bool = False


class PermanentError(DownstreamError):
    """Not worth retrying: validation, out of stock, unknown reservation, auth (other 4xx)."""
