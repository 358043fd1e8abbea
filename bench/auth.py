"""The bench posts as a real sender would: with an intake API key of its own."""

from __future__ import annotations

from hub.db.engine import unit_of_work
from hub.services import keys
from hub.settings import get_settings


def sender_headers(sender: str = "bench") -> dict[str, str]:
    """Make a key for ``sender`` (in the stack's own, just emptied database) and its header."""
    if not get_settings().intake_auth:
        return {}
    with unit_of_work() as session:
        new = keys.create_key(session, sender)
    return {"Authorization": f"Bearer {new.token}"}
