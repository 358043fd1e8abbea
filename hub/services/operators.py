"""Operator accounts: add, remove, list, unlock, and checking a login (``hub operators``).

Each operator is a person with an account, so "who replayed" names someone. Passwords are
kept as argon2id hashes (argon2-cffi: slow and salted, so a copy of the database does not give
them away); the account of ``HUB_OPERATOR_USER`` keeps working with the setting's password,
with the same counters. Wrong passwords are slowed and the account locked per
``hub.core.login_policy``; the lock and every checked wrong password are audited.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.core.login_policy import (
    LoginPolicy,
    lock_after_failure,
    password_problem,
    wait_before_check,
)
from hub.db import audit
from hub.db.models import OperatorAccount
from hub.settings import Settings

NAME_FORMAT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
OPERATOR_ADDED = "operator.added"
OPERATOR_REMOVED = "operator.removed"
LOGIN_FAILED = "operator.login_failed"
OPERATOR_LOCKED = "operator.locked"
OPERATOR_UNLOCKED = "operator.unlocked"

# OWASP's argon2id floor (19 MiB, 2 passes, 1 lane): slow enough that a stolen hash resists
# guessing, light enough that a burst of logins cannot exhaust the API's memory.
_hasher = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1)
# Checked for a name with no account, so a wrong name costs what a wrong password does.
_DUMMY_HASH = _hasher.hash("no such operator, never a password")


class OperatorError(Exception):
    """An account could not be made, found or changed; the message says why."""


@dataclass(frozen=True)
class Login:
    """What a login attempt came to: ``ok``; or refused, with ``retry_after`` > 0 when the
    password was not even checked (too soon after a wrong one, or the account is locked)."""

    ok: bool
    retry_after: float = 0.0
    locked: bool = False


def add_operator(session: Session, name: str, password: str, *, by: str) -> OperatorAccount:
    if not NAME_FORMAT.match(name):
        raise OperatorError(
            f"{name!r} is not an operator name: 1-64 letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit"
        )
    problem = password_problem(password)
    if problem:
        raise OperatorError(problem)
    if session.get(OperatorAccount, name) is not None:
        raise OperatorError(f"operator {name} exists already (remove it first to reset)")
    account = OperatorAccount(name=name, password_hash=_hasher.hash(password), failed_logins=0)
    session.add(account)
    audit.record(session, OPERATOR_ADDED, operator=name, by=by)
    return account


def remove_operator(session: Session, name: str, *, by: str) -> None:
    account = session.get(OperatorAccount, name)
    if account is None:
        raise OperatorError(f"no operator {name}")
    session.delete(account)
    audit.record(session, OPERATOR_REMOVED, operator=name, by=by)


def unlock_operator(session: Session, name: str, *, by: str) -> OperatorAccount:
    account = session.get(OperatorAccount, name, with_for_update=True)
    if account is None:
        raise OperatorError(f"no operator {name}")
    was = account.failed_logins
    account.failed_logins, account.locked_until, account.last_failed_at = 0, None, None
    audit.record(session, OPERATOR_UNLOCKED, operator=name, by=by, failed_logins=was)
    return account


def list_operators(session: Session) -> list[OperatorAccount]:
    return list(session.scalars(select(OperatorAccount).order_by(OperatorAccount.name)))


def any_operator(session: Session, settings: Settings) -> bool:
    """Whether any login can succeed (else the pages answer 503, never run open)."""
    if settings.operator_user is not None and settings.operator_password is not None:
        return True
    return session.scalars(select(OperatorAccount.name).limit(1)).first() is not None


def check_login(
    session: Session,
    settings: Settings,
    name: str,
    password: str,
    *,
    client: str,
    now: datetime | None = None,
) -> Login:
    """Check a login under the account's counters (one transaction: call in unit_of_work)."""
    now = now or datetime.now(UTC)
    policy: LoginPolicy = settings.login
    account = _account(session, settings, name)
    if account is None:
        _verify(_DUMMY_HASH, password)
        return Login(ok=False)
    wait = wait_before_check(
        policy,
        failed=account.failed_logins,
        last_failed_at=account.last_failed_at,
        locked_until=account.locked_until,
        now=now,
    )
    if wait > 0:
        locked = account.locked_until is not None and account.locked_until > now
        return Login(ok=False, retry_after=wait, locked=locked)
    if _password_right(settings, account, password):
        account.failed_logins, account.locked_until, account.last_failed_at = 0, None, None
        account.last_login_at = now
        return Login(ok=True)
    account.failed_logins += 1
    account.last_failed_at = now
    audit.record(
        session,
        LOGIN_FAILED,
        status="error",
        operator=name,
        client=client,
        failed_logins=account.failed_logins,
    )
    locked_until = lock_after_failure(policy, failed=account.failed_logins, now=now)
    if locked_until is not None:
        account.locked_until = locked_until
        audit.record(
            session,
            OPERATOR_LOCKED,
            status="error",
            operator=name,
            client=client,
            failed_logins=account.failed_logins,
            until=locked_until.isoformat(),
        )
    return Login(ok=False)


def form_secret(session: Session, settings: Settings, name: str) -> str:
    """What keys an operator's form tokens: their stored hash (or the setting's password), so
    a token dies with a password change and nobody without the database can make one."""
    account = session.get(OperatorAccount, name)
    if account is not None and account.password_hash:
        return account.password_hash
    password = settings.operator_password
    return password.get_secret_value() if password is not None else ""


def _account(session: Session, settings: Settings, name: str) -> OperatorAccount | None:
    account = session.get(OperatorAccount, name, with_for_update=True)
    if account is not None or name != settings.operator_user or not settings.operator_password:
        return account
    # The settings' account gets its row (its counters) the first time it is used.
    account = OperatorAccount(name=name, password_hash=None, failed_logins=0)
    session.add(account)
    session.flush()
    return account


def _password_right(settings: Settings, account: OperatorAccount, password: str) -> bool:
    if account.password_hash is not None:
        return _verify(account.password_hash, password)
    expected = settings.operator_password
    if account.name != settings.operator_user or expected is None:
        return False
    return hmac.compare_digest(password.encode(), expected.get_secret_value().encode())


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
