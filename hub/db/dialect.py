"""``INSERT ... ON CONFLICT`` for whichever database the session is bound to.

PostgreSQL in production, SQLite in trial mode: both dialects have their own ``insert`` with
``on_conflict_do_nothing``, and the generic one has none.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

Upsert = postgresql.Insert | sqlite.Insert


def insert_for(session: Session, entity: Any) -> Upsert:
    """An ``insert(entity)`` that knows ``ON CONFLICT`` on the session's database."""
    if session.get_bind().dialect.name == "sqlite":
        return sqlite.insert(entity)
    return postgresql.insert(entity)
