"""classify(): every status of the contract, any body, any Retry-After, never a token."""

from __future__ import annotations

import json
from email.utils import formatdate

import pytest

from adapters.http import MAX_MESSAGE_CHARS, classify, parse_retry_after
from hub.core.errors import DownstreamError, PermanentError, TransientError

NOW = 1_700_000_000.0
NGINX_502 = (
    b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway"
    b"</h1></center><hr><center>nginx</center></body></html>"
)


def error_body(code: str, detail: str = "") -> bytes:
    return json.dumps({"error": code, "detail": detail}).encode()


def run(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> DownstreamError:
    return classify(system="erp", status=status, headers=headers or {}, body=body, now=NOW)


@pytest.mark.parametrize(
    ("status", "body", "kind", "code"),
    [
        (400, error_body("missing_idempotency_key"), PermanentError, "missing_idempotency_key"),
        (401, error_body("unauthorized"), PermanentError, "unauthorized"),
        (403, error_body("forbidden"), PermanentError, "forbidden"),
        (404, error_body("unknown_reservation"), PermanentError, "unknown_reservation"),
        (408, error_body("timeout"), TransientError, "timeout"),
        (409, error_body("out_of_stock", "SKU-001: 3 wanted"), PermanentError, "out_of_stock"),
        (418, error_body("teapot"), PermanentError, "teapot"),
        (422, error_body("idempotency_key_reuse"), PermanentError, "idempotency_key_reuse"),
        (425, error_body("too_early"), TransientError, "too_early"),
        (429, error_body("rate_limited"), TransientError, "rate_limited"),
        (500, error_body("internal"), TransientError, "internal"),
        (502, NGINX_502, TransientError, None),
        (503, error_body("down"), TransientError, "down"),
        (504, b"", TransientError, None),
        (599, b"network connect timeout", TransientError, None),
    ],
)
def test_status_decides_transient_or_permanent(
    status: int, body: bytes, kind: type[DownstreamError], code: str | None
) -> None:
    error = run(status, body)

    assert type(error) is kind
    assert (error.system, error.status, error.code) == ("erp", status, code)
    assert error.message
    assert error.retry_after is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (error_body("out_of_stock", "SKU-001: 3 wanted"), "SKU-001: 3 wanted"),
        (b'{"error": "unauthorized"}', "unauthorized"),
        (b'{"detail": [{"loc": ["body", "qty"]}]}', '[{"loc":["body","qty"]}]'),
        (NGINX_502, "502 Bad Gateway 502 Bad Gateway nginx"),
        (b"", "empty response body (HTTP 503 Service Unavailable)"),
        (b"   \r\n ", "empty response body (HTTP 503 Service Unavailable)"),
        (b"\xff\xfe garbage \x00\x1b[31m", "\ufffd\ufffd garbage [31m"),
        (b'{"error": ', '{"error":'),
        (b"[1, 2]", "[1, 2]"),
    ],
)
def test_message_comes_from_any_body(body: bytes, message: str) -> None:
    assert run(503, body).message == message


def test_long_bodies_are_truncated() -> None:
    error = run(500, b"<p>" + b"x" * 5000 + b"</p>")

    assert len(error.message) <= MAX_MESSAGE_CHARS
    assert error.message.startswith("xxx")


def test_tokens_never_reach_the_message() -> None:
    body = error_body("unauthorized", "got Authorization: Bearer s3cret-token; expected another")
    raw = b"echo: token=s3cret-token"

    by_pattern = run(401, body)
    by_value = classify(
        system="erp", status=502, headers={}, body=raw, now=NOW, secrets=("s3cret-token",)
    )

    assert "s3cret" not in by_pattern.message
    assert "Bearer [redacted]" in by_pattern.message
    assert "s3cret" not in by_value.message


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        ("0", 0.0),
        ("-5", 0.0),
        (formatdate(NOW + 90, usegmt=True), 90.0),
        (formatdate(NOW - 3600, usegmt=True), 0.0),
        ("Wed, 21 Oct 2015 07:28:00 -0000", 0.0),
        ("soon", None),
        ("", None),
        ("nan", None),
        ("inf", None),
        ("Mon, 99 Foo 2015 07:28:00 GMT", None),
    ],
)
def test_retry_after_seconds_or_http_date(value: str, seconds: float | None) -> None:
    error = run(429, error_body("rate_limited"), {"retry-after": value})

    assert error.retry_after == seconds
    assert parse_retry_after(value, now=NOW) == seconds


def test_retry_after_header_name_is_case_insensitive() -> None:
    assert run(503, b"", {"RETRY-AFTER": "3"}).retry_after == 3.0


def test_missing_retry_after_is_none() -> None:
    assert run(503, b"", {"Content-Type": "text/html"}).retry_after is None


def test_str_names_system_status_and_code() -> None:
    error = run(409, error_body("out_of_stock", "SKU-9"))

    assert str(error) == "erp HTTP 409 [out_of_stock]: SKU-9"


@pytest.mark.parametrize(
    ("status", "down"), [(500, True), (502, True), (503, True), (429, False), (408, False)]
)
def test_only_a_5xx_says_the_system_is_down(status: int, down: bool) -> None:
    error = run(status)

    assert isinstance(error, TransientError)
    assert error.system_down is down


def test_the_breaker_reads_the_typed_error_not_the_status() -> None:
    from hub.db.breaker import counts_against

    # An adapter that is not HTTP at all (no status) says whether its system is down.
    assert counts_against(TransientError(system="smtp", message="refused"))
    assert not counts_against(TransientError(system="smtp", message="busy", system_down=False))
    assert not counts_against(PermanentError(system="smtp", message="bad address", code="550"))


@pytest.mark.parametrize(("status", "throttled"), [(429, True), (503, False), (408, False)])
def test_only_a_429_says_the_system_is_throttling_its_callers(status: int, throttled: bool) -> None:
    error = run(status)

    assert isinstance(error, TransientError)
    assert error.throttled is throttled
