"""What a sandbox answers: a ready-to-send reply, or an ApiError that becomes one."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

JSON = "application/json"


@dataclass(frozen=True)
class Reply:
    """One HTTP answer, serialized once so an idempotent replay sends the very same bytes."""

    status: int
    payload: bytes
    content_type: str = JSON
    headers: tuple[tuple[str, str], ...] = ()
    # A hostile downstream's ways (faults "drip" and "huge"): the payload sent one byte every
    # this many seconds, and this many spaces after it (JSON allows them; never held in memory).
    drip_s: float = 0.0
    padding: int = 0

    @classmethod
    def json(cls, status: int, body: object, headers: tuple[tuple[str, str], ...] = ()) -> Reply:
        """A JSON reply."""
        return cls(status, dumps(body), JSON, headers)

    @classmethod
    def reset(cls) -> Reply:
        """No answer at all: the server resets the connection instead."""
        return cls(0, b"")

    @property
    def is_reset(self) -> bool:
        return self.status == 0

    def with_header(self, name: str, value: str) -> Reply:
        """The same reply with one more header."""
        return replace(self, headers=(*self.headers, (name, value)))


class ApiError(Exception):
    """A contract error: status and body {"error": code, "detail": text, ...extra}."""

    def __init__(self, status: int, code: str, detail: str = "", **extra: Any) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.body: dict[str, Any] = {"error": code, "detail": detail, **extra}

    def reply(self) -> Reply:
        """The reply this error is sent as."""
        return Reply.json(self.status, self.body)


def dumps(body: object) -> bytes:
    """Compact UTF-8 JSON."""
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def parse_json(raw: bytes) -> Any:
    """Parse a request body, or refuse it with 422 validation_error."""
    try:
        return json.loads(raw)
    except ValueError:
        raise ApiError(422, "validation_error", "body is not valid UTF-8 JSON") from None


def fingerprint(path: str, body: Any) -> str:
    """A canonical form of a write, so key order or spacing does not count as a different body."""
    return path + "\n" + json.dumps(body, sort_keys=True, separators=(",", ":"))
