"""Who may use the intake API: a sender's API key on every request, and a signature for keys
that sign (an HMAC over the timestamp, the method, the path, the Idempotency-Key and the raw
body, for webhook senders; the old form covered the timestamp and body only).

The key is checked before the body is read or anything stored. Keys are read from PostgreSQL on
every request, never cached, so a revoked key fails at once. Refusals name the problem and
never echo what was presented.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from fastapi import Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool

from hub.db.unavailable import is_unavailable
from hub.services import keys
from hub.settings import Settings

log = logging.getLogger("hub.intake_auth")

# An older signed request is refused as a replay; a sender's clock may run this far ahead.
SIGNATURE_MAX_AGE = 300
SIGNATURE_MAX_SKEW = 60
TIMESTAMP_HEADER = "x-hub-timestamp"
SIGNATURE_HEADER = "x-hub-signature"


@dataclass(frozen=True)
class Caller:
    key_id: str
    sender: str
    signing_secret: str | None = field(default=None, repr=False)


class Refused(Exception):
    """The request is refused before anything is stored; ``response()`` tells the sender why."""

    def __init__(self, reason: str, detail: str, *, status: int = 401) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.status = status

    def response(self) -> JSONResponse:
        if self.status == 401:
            error, headers = "unauthorized", {"WWW-Authenticate": 'Bearer realm="hub"'}
        else:
            error, headers = "database_unavailable", {"Retry-After": "5"}
        return JSONResponse(
            {"error": error, "reason": self.reason, "detail": self.detail},
            status_code=self.status,
            headers=headers,
        )


def presented_key(headers: Mapping[str, str]) -> str:
    """The key from ``Authorization: Bearer <key>`` or ``X-Api-Key: <key>``."""
    authorization = headers.get("authorization")
    if authorization is not None:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Refused("bad_authorization", "the Authorization header must be: Bearer <key>")
        return token.strip()
    api_key = headers.get("x-api-key")
    if api_key is None or not api_key.strip():
        raise Refused(
            "missing_credentials",
            "an API key is required: send Authorization: Bearer <key> (or X-Api-Key: <key>)",
        )
    return api_key.strip()


def authenticate(headers: Mapping[str, str], settings: Settings) -> Caller | None:
    """The caller the key belongs to (None when intake auth is switched off), or ``Refused``."""
    if not settings.intake_auth:
        return None
    token = presented_key(headers)
    key_id = keys.key_id_of(token)
    if key_id is None:
        raise _refused("malformed_api_key", "the API key is not one the hub issued", key_id)
    try:
        holder = keys.check_key(token)
    except SQLAlchemyError as exc:
        if not is_unavailable(exc):
            raise
        log.error("PostgreSQL unavailable while checking an API key")
        raise Refused(
            "database_unavailable", "PostgreSQL is not answering; retry later", status=503
        ) from None
    if holder is None:
        raise _refused("invalid_api_key", "unknown or wrong API key", key_id)
    caller = Caller(key_id, holder.sender, holder.signing_secret)
    if holder.revoked:
        raise _refused("revoked_api_key", "this API key has been revoked", key_id)
    if caller.signing_secret is not None:
        _check_timestamp(headers, key_id)
    return caller


async def authenticate_request(request: Request, settings: Settings) -> Caller | None:
    return await run_in_threadpool(authenticate, request.headers, settings)


def verify_signature(
    caller: Caller | None,
    headers: Mapping[str, str],
    body: bytes,
    *,
    method: str,
    path: str,
    accept_v1: bool = True,
    now: float | None = None,
) -> None:
    """For a key that signs: the request must carry a valid, fresh signature, or ``Refused``.

    ``v2=`` signs the method, the path, the Idempotency-Key and the body with the timestamp, so
    a captured signed request cannot be replayed to another route or under another key. The
    old ``sha256=`` (timestamp and body only) is accepted while ``HUB_SIGNATURE_V1`` is true.
    """
    if caller is None or caller.signing_secret is None:
        return
    stamp = _check_timestamp(headers, caller.key_id, now=now)
    # Bytes, not str: compare_digest refuses non-ASCII str, and a header may hold anything.
    given = headers.get(SIGNATURE_HEADER, "").strip().encode("latin-1", errors="replace")
    key = headers.get("idempotency-key", "")
    if given.startswith(b"v2="):
        expected = signature_v2(caller.signing_secret, stamp, method, path, key, body)
    elif given.startswith(b"sha256=") and accept_v1:
        expected = signature(caller.signing_secret, stamp, body)
    else:
        raise _refused(
            "bad_signature",
            "X-Hub-Signature must be v2=<hex HMAC-SHA256 of 'v2', timestamp, method, path and "
            "Idempotency-Key, one a line, then the raw body>"
            + ("" if accept_v1 else " (the old sha256= form is no longer accepted)"),
            caller.key_id,
        )
    if not hmac.compare_digest(expected.encode(), given):
        raise _refused(
            "bad_signature",
            "X-Hub-Signature does not match: expected v2=<hex HMAC-SHA256 of 'v2\\n' + "
            "timestamp + '\\n' + method + '\\n' + path + '\\n' + Idempotency-Key + '\\n' + "
            "raw body, keyed with the signing secret> (or the old sha256= of timestamp + '.' + "
            "raw body)",
            caller.key_id,
        )


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The old (v1) X-Hub-Signature of a body sent at ``timestamp`` (Unix seconds)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def signature_v2(
    secret: str, timestamp: str, method: str, path: str, idempotency_key: str, body: bytes
) -> str:
    """The v2 X-Hub-Signature: the timestamp, the method, the path (without the query) and the
    Idempotency-Key (empty when none is sent), one a line, then the raw body."""
    signed = "\n".join(("v2", timestamp, method.upper(), path, idempotency_key, "")).encode()
    mac = hmac.new(secret.encode(), signed + body, hashlib.sha256)
    return f"v2={mac.hexdigest()}"


def _check_timestamp(headers: Mapping[str, str], key_id: str, *, now: float | None = None) -> str:
    stamp = headers.get(TIMESTAMP_HEADER, "").strip()
    if not stamp or not headers.get(SIGNATURE_HEADER):
        raise _refused(
            "missing_signature",
            "this key signs its requests: send X-Hub-Timestamp and X-Hub-Signature",
            key_id,
        )
    if not stamp.isascii() or not stamp.isdigit() or len(stamp) > 12:
        raise _refused("bad_timestamp", "X-Hub-Timestamp must be Unix time in seconds", key_id)
    age = (time.time() if now is None else now) - int(stamp)
    if age > SIGNATURE_MAX_AGE:
        raise _refused(
            "stale_timestamp",
            f"X-Hub-Timestamp is more than {SIGNATURE_MAX_AGE} s old: sign each request afresh",
            key_id,
        )
    if age < -SIGNATURE_MAX_SKEW:
        raise _refused(
            "future_timestamp",
            f"X-Hub-Timestamp is more than {SIGNATURE_MAX_SKEW} s ahead of the hub's clock",
            key_id,
        )
    return stamp


def _refused(reason: str, detail: str, key_id: str | None) -> Refused:
    # The key id is public (it is what `hub keys list` shows); the key itself is never logged.
    log.warning("intake request refused: %s (key id %s)", reason, key_id or "-")
    return Refused(reason, detail)
