"""Migration 0004 gives orders stored before it an owner, so repeats and GETs keep working."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text

from hub.core.senders import ANONYMOUS_SENDER, LEGACY_SENDER
from hub.db import migrate
from hub.db.engine import get_engine
from hub.settings import get_settings


def insert_old_order(external_id: str) -> None:
    with get_engine().begin() as connection:
        connection.execute(
            text(
                "INSERT INTO orders (id, external_id, status, customer, ship_to, currency)"
                " VALUES (:id, :ext, 'completed', '{}', '{}', 'EUR')"
            ),
            {"id": uuid.uuid4(), "ext": external_id},
        )


def add_key(sender: str) -> None:
    with get_engine().begin() as connection:
        connection.execute(
            text(
                "INSERT INTO api_keys (id, sender, key_hash, created_at)"
                " VALUES (:id, :sender, 'x', now())"
            ),
            {"id": uuid.uuid4().hex[:12], "sender": sender},
        )


@pytest.mark.parametrize(
    ("senders", "owner"),
    [([], ANONYMOUS_SENDER), (["crm"], "crm"), (["crm", "shop"], LEGACY_SENDER)],
)
def test_existing_orders_get_an_owner(senders: list[str], owner: str) -> None:
    url = get_settings().database_url
    migrate.downgrade(url, "0003")
    try:
        for sender in senders:
            add_key(sender)
        insert_old_order("OLD-1")

        migrate.upgrade(url, "0004")

        with get_engine().connect() as connection:
            found = connection.execute(text("SELECT sender FROM orders")).scalars().all()
        assert found == [owner]
    finally:
        migrate.upgrade(url)
