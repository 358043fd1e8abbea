"""Who the operator is, and whether a form really came from our own page.

Operator surfaces (the failures page, replay, discard) take HTTP basic auth against the
operator accounts (``hub operators add``, argon2id hashes) or ``HUB_OPERATOR_USER`` /
``HUB_OPERATOR_PASSWORD``, separate from the intake's API keys; wrong passwords are slowed and
then lock the account (``hub.services.operators``). With no account at all the surfaces answer
503: they never run open.

Browsers resend basic credentials on any request to the origin, a forged cross-site form
included, so every state-changing form also carries a token only our page can make (an HMAC
keyed by the operator's stored credentials) and a cross-origin ``Origin`` is refused outright.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import math
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from fastapi import HTTPException, Request

from hub.core.login_policy import LoginCounter, LoginPolicy
from hub.db.engine import unit_of_work
from hub.services import operators
from hub.settings import Settings

log = logging.getLogger("hub.operator_auth")

NOT_CONFIGURED = (
    "no operator account: add one with hub operators add NAME "
    "(or set HUB_OPERATOR_USER / HUB_OPERATOR_PASSWORD)"
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


def operator_dependency(settings: Settings) -> Callable[[Request], str]:
    """A FastAPI dependency that returns the operator's name or refuses the request: 401 for
    wrong credentials, 429 with Retry-After while the account's wrong passwords are being
    slowed or it is locked (the password is then not even checked)."""

    clients = ClientCounters(settings.login)

    def require_operator(request: Request) -> str:
        given = parse_basic(request.headers.get("authorization"))
        client = request.client.host if request.client else "?"
        wait = clients.wait(client) if given is not None else 0.0
        if wait > 0:  # many names tried from one client: slowed, whatever the name
            raise HTTPException(
                429,
                f"too many wrong passwords from this client: try again in {math.ceil(wait)} s",
                headers={"Retry-After": str(math.ceil(wait))},
            )
        with unit_of_work() as session:
            if not operators.any_operator(session, settings):
                raise HTTPException(503, NOT_CONFIGURED)
            if given is None:
                login = operators.Login(ok=False)
            else:
                login = operators.check_login(session, settings, *given, client=client)
        if login.ok and given is not None:
            clients.succeeded(client)
            return given[0]
        if given is not None and login.retry_after <= 0:
            clients.failed(client)  # a password was checked and was wrong
        if login.retry_after > 0:
            why = "locked after too many wrong passwords" if login.locked else "slowed down"
            log.warning("operator login refused from %s: account %s", client, why)
            raise HTTPException(
                429,
                f"operator account {why}: try again in {math.ceil(login.retry_after)} s"
                + (" or ask an operator to run hub operators unlock" if login.locked else ""),
                headers={"Retry-After": str(math.ceil(login.retry_after))},
            )
        if given is not None:
            log.warning("operator login refused from %s", client)
        raise HTTPException(
            401, "operator credentials required", headers={"WWW-Authenticate": CHALLENGE}
        )

    return require_operator


class ClientCounters:
    """Wrong passwords per client address, in this process: the same doubling wait as an
    account's, so one client cannot try name after name at full speed (each costs a hash). No
    lock per client: many people may share one address (a NAT); accounts lock, clients slow."""

    MAX_CLIENTS = 10_000  # the oldest forgotten first: memory stays bounded under a spray

    def __init__(self, policy: LoginPolicy) -> None:
        self._policy = policy.model_copy(update={"lock_after": 1000})
        self._counters: dict[str, LoginCounter] = {}
        self._lock = threading.Lock()

    def wait(self, client: str) -> float:
        with self._lock:
            counter = self._counters.get(client)
            return counter.wait(datetime.now(UTC)) if counter is not None else 0.0

    def failed(self, client: str) -> None:
        with self._lock:
            counter = self._counters.pop(client, None) or LoginCounter(self._policy)
            counter.failed_once(datetime.now(UTC))
            self._counters[client] = counter  # last in: the most recent is kept longest
            while len(self._counters) > self.MAX_CLIENTS:
                self._counters.pop(next(iter(self._counters)))

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._counters.pop(client, None)


def _form_key(settings: Settings, operator: str) -> bytes:
    with unit_of_work() as session:
        secret = operators.form_secret(session, settings, operator)
    # Derived from the operator's stored credentials: every API process agrees on it without a
    # new setting, and changing the password voids every token issued before.
    return hashlib.sha256(
        b"hub-ui-form-token\0" + operator.encode() + b"\0" + secret.encode()
    ).digest()


def _form_mac(settings: Settings, operator: str, issued: int) -> str:
    message = f"{operator}\0{issued}".encode()
    return hmac.new(_form_key(settings, operator), message, hashlib.sha256).hexdigest()


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
