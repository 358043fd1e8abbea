"""Bring the database to the newest schema, creating the database itself when it is missing."""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from alembic import command
from hub.db.engine import engine_for
from hub.db.sqlite import sqlite_file

ROOT = Path(__file__).resolve().parents[2]


def alembic_config(database_url: str) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "alembic"))
    config.attributes["database_url"] = database_url
    return config


def ensure_database(database_url: str) -> bool:
    """Create the database named in the URL if it does not exist; True if it was created."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return _ensure_sqlite_file(database_url)
    if not url.get_backend_name().startswith("postgresql") or not url.database:
        return False
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            exists = connection.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": url.database}
            ).scalar()
            if exists:
                return False
            quoted = connection.dialect.identifier_preparer.quote(url.database)
            connection.execute(text(f"CREATE DATABASE {quoted}"))
            return True
    finally:
        admin.dispose()


def _ensure_sqlite_file(database_url: str) -> bool:
    """Trial mode: the SQLite file (and its folder) come into being on first connect."""
    path = sqlite_file(database_url)
    if path is None or path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    with engine_for(database_url).connect():  # creates the file, in WAL mode
        pass
    return True


def upgrade(database_url: str, revision: str = "head") -> None:
    ensure_database(database_url)
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)
