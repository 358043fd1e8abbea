"""Intake API keys of senders: make, find, list and revoke them (the commands: ``hub keys``).

A key reads ``hub_<id>_<secret>``. The id (12 hex digits) is public: it finds the row and is
what operators see. The secret (256 random bits) proves the sender holds the key. Only sha256
of the whole key is stored, so a copy of the database lets nobody post orders; the key itself is
shown once, when it is made.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.db.engine import autocommit, get_engine
from hub.db.models import ApiKey

KEY_FORMAT = re.compile(r"^hub_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
SENDER_FORMAT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class KeysError(Exception):
    """A key could not be made or found."""


class UnknownKey(KeysError):
    """No key has this id."""


class BadSender(KeysError):
    """A sender name is 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit."""


@dataclass(frozen=True)
class NewKey:
    key_id: str
    sender: str
    # Kept out of repr so that a logged or printed NewKey never shows them.
    token: str = field(repr=False)
    signing_secret: str | None = field(default=None, repr=False)


def hash_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def key_id_of(token: str) -> str | None:
    """The public id of a well-formed key, or None."""
    match = KEY_FORMAT.match(token)
    return match.group(1) if match else None


def create_key(session: Session, sender: str, *, signing: bool = False) -> NewKey:
    """Store a new key of ``sender`` (hashed) and return it: the only time it is seen whole."""
    if not SENDER_FORMAT.match(sender):
        raise BadSender(BadSender.__doc__)
    key_id = secrets.token_hex(6)
    token = f"hub_{key_id}_{secrets.token_urlsafe(32)}"
    signing_secret = f"whsec_{secrets.token_urlsafe(32)}" if signing else None
    session.add(
        ApiKey(id=key_id, sender=sender, key_hash=hash_key(token), signing_secret=signing_secret)
    )
    session.flush()
    return NewKey(key_id, sender, token, signing_secret)


def find_key(session: Session, token: str) -> ApiKey | None:
    """The key row ``token`` proves (revoked or not), or None for an unknown or wrong key."""
    key_id = key_id_of(token)
    if key_id is None:
        return None
    row = session.get(ApiKey, key_id)
    if row is None:
        return None
    # Constant time, so response timing says nothing about how much of a guess was right.
    return row if hmac.compare_digest(row.key_hash, hash_key(token)) else None


@dataclass(frozen=True)
class KeyHolder:
    """Who a presented key belongs to, as the intake checks it on every request."""

    sender: str
    signing_secret: str | None
    revoked: bool


def check_key(token: str) -> KeyHolder | None:
    """The holder of the key ``token`` proves (revoked or not), or None for an unknown or wrong
    key: one statement on its own connection, no transaction around it."""
    key_id = key_id_of(token)
    if key_id is None:
        return None
    with autocommit(get_engine()).connect() as connection:
        row = connection.execute(
            select(ApiKey.sender, ApiKey.key_hash, ApiKey.signing_secret, ApiKey.revoked_at).where(
                ApiKey.id == key_id
            )
        ).one_or_none()
    # Constant time, so response timing says nothing about how much of a guess was right.
    if row is None or not hmac.compare_digest(row.key_hash, hash_key(token)):
        return None
    return KeyHolder(row.sender, row.signing_secret, revoked=row.revoked_at is not None)


def list_keys(session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.sender, ApiKey.created_at)))


def revoke_key(session: Session, key_id: str, *, by: str) -> ApiKey:
    """Revoke a key at once (the intake reads keys on every request); revoking twice is a no-op.

    The key's row keeps who revoked it and when (key events stay out of the orders' audit trail).
    """
    row = session.get(ApiKey, key_id, with_for_update=True)
    if row is None:
        raise UnknownKey(f"no key with id {key_id!r}")
    if row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
        row.revoked_by = by[:128]
    return row
