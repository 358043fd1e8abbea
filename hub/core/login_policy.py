"""How wrong passwords are slowed and an account locked (issue: 300 guesses in 1.6 s).

Per account, counted in PostgreSQL so every API process agrees: after each wrong password the
next one is not even checked until a delay has passed, doubling from ``backoff`` up to
``backoff_max``; after ``lock_after`` wrong passwords in a row the account is locked for
``lock_seconds`` (or until an operator clears it with ``hub operators unlock``). A right
password resets the count. A refused attempt (too soon, or locked) is not checked, so it
teaches an attacker nothing and costs no hash.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

# What an operator's password must be at least (hub operators add, HUB_OPERATOR_PASSWORD).
MIN_PASSWORD_CHARS = 12


class LoginPolicy(BaseModel):
    """``HUB_LOGIN__LOCK_AFTER``, ``HUB_LOGIN__LOCK_SECONDS``, ``HUB_LOGIN__BACKOFF``, ..."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    lock_after: int = Field(default=10, ge=1, le=1000)
    lock_seconds: float = Field(default=900.0, ge=1)
    backoff: float = Field(default=1.0, ge=0)
    backoff_max: float = Field(default=30.0, ge=0)


def wait_before_check(
    policy: LoginPolicy,
    *,
    failed: int,
    last_failed_at: datetime | None,
    locked_until: datetime | None,
    now: datetime,
) -> float:
    """Seconds before a password of this account may be checked again (0: check it now)."""
    if locked_until is not None and locked_until > now:
        return (locked_until - now).total_seconds()
    if failed <= 0 or last_failed_at is None or policy.backoff <= 0:
        return 0.0
    delay = min(policy.backoff * 2 ** (failed - 1), policy.backoff_max)
    return max(0.0, (last_failed_at + timedelta(seconds=delay) - now).total_seconds())


def lock_after_failure(policy: LoginPolicy, *, failed: int, now: datetime) -> datetime | None:
    """When an account with ``failed`` wrong passwords in a row is locked until, if it is."""
    if failed >= policy.lock_after:
        return now + timedelta(seconds=policy.lock_seconds)
    return None


def password_problem(password: str) -> str | None:
    """Why a new password is refused, or None."""
    if len(password) < MIN_PASSWORD_CHARS:
        return f"a password must have at least {MIN_PASSWORD_CHARS} characters"
    if password.strip() != password:
        return "a password must not start or end with spaces"
    return None


class LoginCounter:
    """One account's counters in this process's memory, for a login another program checks
    (Flower's basic auth): the same slowing and lock, forgotten on restart."""

    def __init__(self, policy: LoginPolicy) -> None:
        self.policy = policy
        self.failed = 0
        self.last_failed_at: datetime | None = None
        self.locked_until: datetime | None = None

    def wait(self, now: datetime) -> float:
        """Seconds before the next password may be checked (0: now)."""
        return wait_before_check(
            self.policy,
            failed=self.failed,
            last_failed_at=self.last_failed_at,
            locked_until=self.locked_until,
            now=now,
        )

    def failed_once(self, now: datetime) -> bool:
        """Count a wrong password; True when it locked the account."""
        self.failed += 1
        self.last_failed_at = now
        self.locked_until = lock_after_failure(self.policy, failed=self.failed, now=now)
        return self.locked_until is not None

    def succeeded(self) -> None:
        self.failed, self.last_failed_at, self.locked_until = 0, None, None
