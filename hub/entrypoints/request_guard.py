"""What the API refuses before any route sees a request: control characters in the path or
query (``/ui/orders/a%00b`` answered 500), Host headers not allowed (``HUB_ALLOWED_HOSTS``); and
for JSON bodies, a key twice in one object (parsers disagree on which one counts)."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import unquote_to_bytes

from fastapi import FastAPI
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from hub.settings import Settings

# C0 controls and DEL, in the decoded path or query (NUL crashes PostgreSQL's text input).
_CONTROL = re.compile(rb"[\x00-\x1f\x7f]")
_REFUSED = json.dumps(
    {"error": "bad_request", "detail": "control characters in the path or query"}
).encode()


class RefuseControlCharacters:
    """A 400 for a path or query holding a control character, before routing (pure ASGI: no
    cost on the intake's path beyond two regular-expression scans)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _has_control(scope):
            await send(
                {
                    "type": "http.response.start",
                    "status": 400,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(_REFUSED)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": _REFUSED})
            return
        await self.app(scope, receive, send)


def _has_control(scope: Scope) -> bool:
    path = scope.get("path", "")
    query: bytes = scope.get("query_string", b"")
    return bool(
        _CONTROL.search(path.encode("utf-8", "surrogateescape"))
        or (query and _CONTROL.search(unquote_to_bytes(query.replace(b"+", b" "))))
    )


def guard_requests(api: FastAPI, settings: Settings) -> None:
    """Install the checks on ``api`` (the Host check only when hosts are listed)."""
    hosts = [host.strip() for host in settings.allowed_hosts.split(",") if host.strip()]
    if hosts and "*" not in hosts:
        api.add_middleware(TrustedHostMiddleware, allowed_hosts=hosts)
    api.add_middleware(RefuseControlCharacters)


class _Duplicate(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _Duplicate(key)
        seen[key] = value
    return seen


def duplicate_key(body: bytes) -> str | None:
    """The first key found twice in one object of a JSON body, or None (also for a body that
    is not JSON: the schema's validation says what is wrong with it)."""
    try:
        json.loads(body, object_pairs_hook=_no_duplicates)
    except _Duplicate as exc:
        return exc.key
    except ValueError:
        return None
    return None
