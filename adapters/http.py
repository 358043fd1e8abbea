"""JSON over HTTP to a downstream system, and the one place that decides transient vs permanent."""

from __future__ import annotations

import html
import json
import math
import os
import re
import threading
import time
from collections.abc import Collection, Mapping
from datetime import UTC
from decimal import Decimal
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Any, ClassVar, Self

import requests
import urllib3
from requests.adapters import HTTPAdapter

from hub.core.errors import DownstreamError, PermanentError, TransientError
from hub.core.system_settings import SystemSettings

# 5xx are transient too; everything else that is not 2xx is permanent.
TRANSIENT_STATUSES = frozenset({408, 425, 429})
MAX_MESSAGE_CHARS = 300
# The most of one answer the hub reads: a contract reply is a few hundred bytes, and a worker
# must not hold a hostile 200 MB error page in memory. More than this of a 2xx is a permanent
# failure (it cannot be read, so it cannot be recorded); of an error, the start is enough.
MAX_RESPONSE_BYTES = 1 << 20
_READ_CHUNK = 1 << 16

_BEARER = re.compile(r"(?i)\bbearer\s+[^\s\"',;<>]+")
_SCRIPT_OR_STYLE = re.compile(r"(?is)<(script|style)\b.*?</\1\s*>")
_TAG = re.compile(r"(?s)<[^>]*>")
_SPACE = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
_URL_USERINFO = re.compile(r"//[^/@\s]+@")


def classify(
    *,
    system: str,
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    now: float | None = None,
    secrets: Collection[str] = (),
) -> DownstreamError:
    """Turn a non-2xx response into a TransientError or PermanentError, whatever its body."""
    code, text = _read_body(body)
    if not text:
        text = f"empty response body ({_reason(status)})"
    message = _truncate(redact(text, secrets))
    retry_after = parse_retry_after(
        _header(headers, "Retry-After"), now=time.time() if now is None else now
    )
    if status >= 500 or status in TRANSIENT_STATUSES:
        return TransientError(
            system=system,
            message=message,
            status=status,
            code=code,
            retry_after=retry_after,
            # A 5xx is the system unwell; a 408/425/429 is it answering about this request.
            system_down=status >= 500,
            throttled=status == HTTPStatus.TOO_MANY_REQUESTS,
        )
    return PermanentError(
        system=system, message=message, status=status, code=code, retry_after=retry_after
    )


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Seconds to wait from a Retry-After of delta-seconds or an HTTP date; None if unusable."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    seconds: float | None
    try:
        seconds = float(value)
    except ValueError:
        seconds = _seconds_until_date(value, now=now)
    if seconds is None or not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def redact(text: str, secrets: Collection[str] = ()) -> str:
    """Remove bearer tokens, the given secrets and URL credentials from text meant for humans."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    text = _BEARER.sub("Bearer [redacted]", text)
    return _URL_USERINFO.sub("//[redacted]@", text)


def _seconds_until_date(value: str, *, now: float) -> float | None:
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" means UTC with unknown origin (RFC 5322)
        when = when.replace(tzinfo=UTC)
    return when.timestamp() - now


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def _read_body(body: bytes) -> tuple[str | None, str]:
    """Return (error code, human text) from a JSON error body, HTML page or anything else."""
    # Control characters would let a hostile body rewrite the operator's terminal or log.
    text = _CONTROL.sub("", body.decode("utf-8", errors="replace")).strip()
    payload = _json_object(text)
    if payload is not None:
        code = payload.get("error")
        code = code if isinstance(code, str) and code else None
        detail = payload.get("detail")
        if detail is not None and not isinstance(detail, str):
            detail = json.dumps(detail, separators=(",", ":"))
        return code, detail or code or text
    if text.startswith("<") or "<html" in text[:200].lower():
        return None, _html_text(text)
    return None, _SPACE.sub(" ", text)


def _json_object(text: str) -> dict[str, Any] | None:
    if not text.startswith("{"):
        return None
    try:
        payload = json.loads(text)
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


def _html_text(text: str) -> str:
    text = _TAG.sub(" ", _SCRIPT_OR_STYLE.sub(" ", text))
    return _SPACE.sub(" ", html.unescape(text)).strip()


def _reason(status: int) -> str:
    try:
        return f"HTTP {status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"HTTP {status}"


def _truncate(text: str) -> str:
    if len(text) <= MAX_MESSAGE_CHARS:
        return text
    return text[: MAX_MESSAGE_CHARS - 1] + "…"


def _bound_next_read(raw: Any, remaining: float) -> None:
    """Let the next read of the answer wait no longer than the call has left (the socket's
    timeout was the read timeout; a connection reused later gets it set again by urllib3)."""
    sock = getattr(getattr(raw, "connection", None), "sock", None)
    if sock is not None:
        timeout = sock.gettimeout()
        sock.settimeout(remaining if timeout is None else min(timeout, remaining))


def _timed_out(exc: BaseException) -> bool:
    # The read's wait is the smaller of the read timeout and what is left of the deadline, so
    # a timeout here means the whole answer did not come in time either way.
    return isinstance(exc, urllib3.exceptions.TimeoutError | TimeoutError)


def _json_default(value: object) -> str:
    # Money travels as decimal strings; a Decimal that slips through must not become a float.
    if isinstance(value, Decimal):
        return format(value, "f")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# One Session (connection pool) per thread: a worker runs many steps at once on the threads
# pool, and requests does not promise that one Session is safe to share between threads (its
# cookie jar and adapters are mutated per request). Keyed by pid as well: a prefork child must
# never write to sockets it inherited from its parent.
_local = threading.local()
# A thread makes one call at a time, so it needs one connection per system it talks to.
_POOL_SIZE = 2


def thread_session() -> requests.Session:
    """The requests.Session of the current thread (and process), created on first use."""
    pid = os.getpid()
    owned: tuple[int, requests.Session] | None = getattr(_local, "session", None)
    if owned is not None and owned[0] == pid:
        return owned[1]
    session = requests.Session()
    # No proxy or netrc lookups in the environment on every request: the URLs are settings,
    # and a proxy belongs in them if one is needed.
    session.trust_env = False
    # Retries belong to the task layer (with backoff and a breaker), not urllib3.
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=_POOL_SIZE, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    _local.session = (pid, session)
    return session


class JsonHttpClient:
    """Base client: bearer auth, idempotency keys, timeouts, and only our errors escape."""

    system: ClassVar[str] = "downstream"

    def __init__(
        self,
        *,
        base_url: str,
        token: str,
        connect_timeout: float = 3.0,
        read_timeout: float = 10.0,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self.timeout = (connect_timeout, read_timeout)
        # One deadline for the whole call (connect, send, every byte of the answer): a reply
        # dripping a byte just inside each read's timeout still ends here.
        self.deadline_s = connect_timeout + read_timeout
        self.max_response_bytes = max_response_bytes

    @classmethod
    def from_settings(cls, settings: SystemSettings) -> Self:
        """The client of a system's HUB_<SYSTEM>_* settings (the registry names this)."""
        return cls(
            base_url=settings.url,
            token=settings.token.get_secret_value(),
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r}, timeout={self.timeout!r})"

    def check(self) -> None:
        """Return when the system answers ``GET /_health`` below a 500; raise a
        TransientError saying why not."""
        where = "GET /_health"
        try:
            response = thread_session().get(
                self.base_url + "/_health", timeout=self.timeout, allow_redirects=False
            )
        except requests.RequestException as exc:
            raise self._transient(
                f"{where}: {type(exc).__name__}: {self._clean(str(exc))}"
            ) from exc
        if response.status_code >= 500:
            raise self._transient(f"{where}: HTTP {response.status_code}")

    def post(
        self, path: str, *, json_body: Mapping[str, Any], idempotency_key: str
    ) -> dict[str, Any]:
        """POST a JSON body under an idempotency key; return the JSON object answered."""
        data = json.dumps(json_body, separators=(",", ":"), default=_json_default).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": idempotency_key}
        return self._request("POST", path, data=data, headers=headers)

    def get(self, path: str) -> dict[str, Any]:
        """GET a JSON object."""
        return self._request("GET", path, data=None, headers={})

    def _request(
        self, method: str, path: str, *, data: bytes | None, headers: dict[str, str]
    ) -> dict[str, Any]:
        headers = {
            "Authorization": f"Bearer {self._token}",
            "Accept": "application/json",
            **headers,
        }
        where = f"{method} {path}"
        deadline = time.monotonic() + self.deadline_s
        try:
            # Streamed, so the body is read here under the call's deadline and size cap.
            response = thread_session().request(
                method,
                self.base_url + path,
                data=data,
                headers=headers,
                timeout=self.timeout,
                allow_redirects=False,
                stream=True,
            )
        except requests.Timeout as exc:
            raise self._transient(f"{where}: timed out ({type(exc).__name__})") from exc
        except (
            requests.exceptions.InvalidURL,
            requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema,
        ) as exc:
            # A malformed base URL is a setting to fix; retrying cannot help.
            message = f"{where}: bad URL {self._clean(str(exc))}"
            raise PermanentError(system=self.system, message=message) from exc
        except requests.ConnectionError as exc:
            raise self._transient(f"{where}: connection failed: {self._clean(str(exc))}") from exc
        except requests.RequestException as exc:
            detail = f"{type(exc).__name__}: {self._clean(str(exc))}"
            raise self._transient(f"{where}: {detail}") from exc
        try:
            body, cut = self._read(where, response, deadline=deadline)
        finally:
            response.close()  # a half-read answer must not go back to the pool
        if not 200 <= response.status_code < 300:
            # The start of a long error page says what went wrong as well as all of it would.
            raise classify(
                system=self.system,
                status=response.status_code,
                headers=response.headers,
                body=body,
                secrets=(self._token,),
            )
        if cut:
            raise PermanentError(
                system=self.system,
                message=f"{where}: answer over {self.max_response_bytes} bytes, not read",
                status=response.status_code,
                code="response_too_large",
            )
        return self._decode(where, response.status_code, body)

    def _read(
        self, where: str, response: requests.Response, *, deadline: float
    ) -> tuple[bytes, bool]:
        """The body, at most ``max_response_bytes`` of it (and whether there was more), read
        before the call's deadline; a TransientError when the deadline passes first."""
        raw = response.raw
        limit = self.max_response_bytes
        chunks: list[bytes] = []
        size = 0
        late = f"{where}: no whole answer within {self.deadline_s:g} s"
        while size <= limit:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._transient(f"{late} ({size} bytes had come)")
            _bound_next_read(raw, remaining)
            try:
                chunk = raw.read1(min(_READ_CHUNK, limit + 1 - size))
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                if _timed_out(exc):
                    raise self._transient(f"{late} ({size} bytes had come)") from exc
                detail = f"{type(exc).__name__}: {self._clean(str(exc))}"
                raise self._transient(f"{where}: answer broken off: {detail}") from exc
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        body = b"".join(chunks)
        return body[:limit], size > limit

    def _decode(self, where: str, status: int, body: bytes) -> dict[str, Any]:
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            # A 2xx we cannot read is most likely a proxy or a half-deployed service.
            snippet = self._clean(body.decode("utf-8", errors="replace"))
            raise TransientError(
                system=self.system,
                message=_truncate(f"{where}: 2xx without a JSON object: {snippet}"),
                status=status,
                system_down=False,
            )
        return payload

    def _transient(self, message: str) -> TransientError:
        return TransientError(system=self.system, message=_truncate(message))

    def _clean(self, text: str) -> str:
        return _SPACE.sub(" ", redact(text, (self._token,))).strip()
