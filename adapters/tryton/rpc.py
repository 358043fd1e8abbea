"""Tryton's JSON-RPC: a session login, one call at a time, and only the hub's errors escape.

A call is ``POST /<database>/rpc/`` with ``{"id", "method", "params"}``, the user's context as
the last parameter. The session lives in Tryton's database and expires when idle: a 401 logs in
again and repeats the call once, inside the same attempt (the attempt was not the system's fault).
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
from dataclasses import dataclass
from typing import Any

import requests

from adapters.http import redact, thread_session
from adapters.tryton.codec import decode, encode
from adapters.tryton.errors import classify_fault, classify_status
from hub.core.errors import PermanentError, TransientError

SYSTEM = "tryton"


@dataclass(frozen=True)
class TrytonConnection:
    """Where the Tryton is and who the hub is there."""

    url: str
    database: str
    user: str
    password: str
    connect_timeout: float = 3.0
    # Tryton's slowest calls (confirm, do, an invoice's post) take ~0.5-1.2 s on a quiet machine.
    read_timeout: float = 30.0


class TrytonRpc:
    """A JSON-RPC client of one Tryton database, safe to share between threads."""

    def __init__(self, connection: TrytonConnection) -> None:
        self.connection = connection
        self._base = connection.url.rstrip("/") + f"/{connection.database}/"
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._authorization: str | None = None
        self._context: dict[str, Any] | None = None
        # How many times the session was opened (a test checks the re-login).
        self.logins = 0

    def __repr__(self) -> str:
        return f"TrytonRpc(url={self.connection.url!r}, database={self.connection.database!r})"

    def call(self, method: str, *params: Any, context: dict[str, Any] | None = None) -> Any:
        """``method`` with ``params`` and the user's context (with ``context`` over it: a
        wizard's records travel as ``active_model``/``active_ids``); the result, decoded."""
        for fresh in (False, True):
            authorization, preferences = self._session(renew=fresh)
            status, payload = self._post(
                method, [*params, {**preferences, **(context or {})}], authorization
            )
            if status == 401 and not fresh:
                continue  # the session expired: log in again, same attempt
            return self._result(method, status, payload)
        raise PermanentError(
            system=SYSTEM,
            message=f"{method}: Tryton refused a fresh session (401): check the user's rights",
            status=401,
            code="unauthorized",
        )

    def expire_session(self) -> None:
        """Forget the session (the next call logs in); the tests use it to fake an expiry."""
        with self._lock:
            self._authorization = "Session " + base64.b64encode(b"hub:0:expired").decode()

    # ---- the session -------------------------------------------------------------------------

    def _session(self, *, renew: bool) -> tuple[str, dict[str, Any]]:
        with self._lock:
            if renew or self._authorization is None or self._context is None:
                self._login()
            assert self._authorization is not None and self._context is not None
            return self._authorization, self._context

    def _login(self) -> None:
        user = self.connection.user
        status, payload = self._post(
            "common.db.login", [user, {"password": self.connection.password}, "en"], None
        )
        if status != 200 or not isinstance(payload, dict) or "result" not in payload:
            error = self._result("common.db.login", status, payload)
            raise PermanentError(system=SYSTEM, message=f"login refused: {error}", status=status)
        result = payload["result"]
        if not result:
            raise PermanentError(
                system=SYSTEM,
                message=f"login of {user!r} refused by Tryton (wrong user or password)",
                code="unauthorized",
            )
        user_id, token = result[0], result[1]
        credentials = f"{user}:{user_id}:{token}".encode()
        self._authorization = "Session " + base64.b64encode(credentials).decode()
        self.logins += 1
        status, payload = self._post(
            "model.res.user.get_preferences", [True, {}], self._authorization
        )
        self._context = dict(self._result("model.res.user.get_preferences", status, payload))

    # ---- one POST ----------------------------------------------------------------------------

    def _post(self, method: str, params: list[Any], authorization: str | None) -> tuple[int, Any]:
        body = json.dumps(
            {"id": next(self._ids), "method": method, "params": encode(params)},
            separators=(",", ":"),
        ).encode()
        headers = {"Content-Type": "application/json"}
        if authorization:
            headers["Authorization"] = authorization
        timeout = (self.connection.connect_timeout, self.connection.read_timeout)
        try:
            response = thread_session().post(
                self._base + "rpc/", data=body, headers=headers, timeout=timeout
            )
        except requests.Timeout as exc:
            raise TransientError(system=SYSTEM, message=f"{method}: timed out") from exc
        except requests.RequestException as exc:
            detail = redact(str(exc), (self.connection.password,))
            raise TransientError(
                system=SYSTEM, message=f"{method}: connection failed: {detail}"[:300]
            ) from exc
        if response.status_code != 200:
            return response.status_code, response.content
        try:
            return 200, json.loads(response.content, object_hook=decode)
        except ValueError:
            return 200, response.content

    def _result(self, method: str, status: int, payload: Any) -> Any:
        if status != 200:
            raise classify_status(method, status, payload if isinstance(payload, bytes) else b"")
        if not isinstance(payload, dict):
            raise TransientError(
                system=SYSTEM, message=f"{method}: Tryton answered 200 without a JSON object"
            )
        if "error" in payload and payload["error"] is not None:
            raise classify_fault(method, payload["error"])
        return payload.get("result")
