"""Who the operator is, and whether a form really came from our own page.

Operator surfaces (the failures page, replay, discard) take HTTP basic auth against
``HUB_OPERATOR_USER`` / ``HUB_OPERATOR_PASSWORD``, separate from the intake's API keys. Without
them configured the surfaces answer 503: they never run open.

Browsers resend basic credentials on any request to the origin, a forged cross-site form
included, so every state-changing form also carries a token only our page can make (an HMAC
keyed by the operator's password) and a cross-origin ``Origin`` is refused outright.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import time
from collections.abc import Callable

from fastapi import HTTPException, Request

from hub.settings import Settings

log = logging.getLogger("hub.operator_auth")

NOT_CONFIGURED = (
    "operator credentials not configured (set HUB_OPERATOR_USER / HUB_OPERATOR_PASSWORD)"
)
CHALLENGE = 'Basic realm="hub operator", charset="UTF-8"'
# A page left open over a shift still submits; an old token copied elsewhere stops working.
FORM_TOKEN_TTL = 12 * 3600
# Tolerated clock difference between two API processes behind one balancer.
CLOCK_SKEW = 300


def parse_basic(header: str | None) -> tuple[str, str] | None:
    """User and password of an ``Authorization: Basic ...`` header, or None if it is not one."""
    if not header:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, colon, password = decoded.partition(":")
    return (user, password) if colon else None


def _digest(value: str) -> bytes:
    # Equal-length digests, so the comparison's time does not reveal the secret's length.
    return hashlib.sha256(value.encode("utf-8")).digest()


def credentials_match(settings: Settings, user: str, password: str) -> bool:
    expected_user, expected_password = settings.operator_user, settings.operator_password
    if expected_user is None or expected_password is None:
        return False
    # Both compared every time (no short circuit): timing does not tell which one was wrong.
    user_ok = hmac.compare_digest(_digest(user), _digest(expected_user))
    password_ok = hmac.compare_digest(
        _digest(password), _digest(expected_password.get_secret_value())
    )
    return user_ok & password_ok


def operator_dependency(settings: Settings) -> Callable[[Request], str]:
    """A FastAPI dependency that returns the operator's user name or refuses the request."""

    def require_operator(request: Request) -> str:
        if settings.operator_user is None or settings.operator_password is None:
            raise HTTPException(503, NOT_CONFIGURED)
        given = parse_basic(request.headers.get("authorization"))
        if given is None or not credentials_match(settings, *given):
            if given is not None:
                client = request.client.host if request.client else "?"
                log.warning("operator login refused from %s", client)
            raise HTTPException(
                401, "operator credentials required", headers={"WWW-Authenticate": CHALLENGE}
            )
        return settings.operator_user

    return require_operator


def _form_key(settings: Settings) -> bytes:
    password = settings.operator_password
    secret = password.get_secret_value() if password is not None else ""
    # Derived from the operator's credentials: every API process agrees on it without a new
    # setting, and changing the password voids every token issued before.
    return hashlib.sha256(
        b"hub-ui-form-token\0" + (settings.operator_user or "").encode() + b"\0" + secret.encode()
    ).digest()


def _form_mac(settings: Settings, operator: str, issued: int) -> str:
    message = f"{operator}\0{issued}".encode()
    return hmac.new(_form_key(settings), message, hashlib.sha256).hexdigest()


def issue_form_token(settings: Settings, operator: str, *, now: float | None = None) -> str:
    issued = int(time.time() if now is None else now)
    return f"{issued}.{_form_mac(settings, operator, issued)}"


def form_token_valid(
    settings: Settings, operator: str, token: str, *, now: float | None = None
) -> bool:
    issued_text, _, mac = token.partition(".")
    if not issued_text.isdigit() or len(issued_text) > 12:
        return False
    age = (time.time() if now is None else now) - int(issued_text)
    if not -CLOCK_SKEW <= age <= FORM_TOKEN_TTL:
        return False
    return hmac.compare_digest(_form_mac(settings, operator, int(issued_text)), mac)


def same_origin(request: Request) -> bool:
    """False when the browser says the request comes from another site."""
    origin = request.headers.get("origin")
    if origin is not None:
        return origin == f"{request.url.scheme}://{request.url.netloc}"
    # No Origin (an old browser, a script): fall back on Fetch metadata where it is sent.
    return request.headers.get("sec-fetch-site", "same-origin") in ("same-origin", "none")
