"""The demo's place: its own database, prefix and ports, one a system (two for one whose
sandbox answers its /_ endpoints on the next port)."""

from __future__ import annotations

from hub.demo.place import demo_place, describe
from hub.settings import Settings


def test_the_demo_takes_the_ports_after_the_api_in_registry_order() -> None:
    settings = Settings(
        database_url="postgresql+psycopg2://me@db.example:5432/orders",
        queue_prefix="hub",
        api_port=8000,
    )
    place = demo_place(settings)
    assert place["HUB_DATABASE_URL"] == "postgresql+psycopg2://me@db.example:5432/orders_demo"
    assert place["HUB_QUEUE_PREFIX"] == "hubdemo"
    assert place["HUB_API_PORT"] == "8020"
    assert place["HUB_ERP_URL"] == "http://127.0.0.1:8021"
    assert place["HUB_WAREHOUSE_URL"] == "http://127.0.0.1:8022"
    assert place["HUB_ACCOUNTING_URL"] == "http://127.0.0.1:8023"
    # SMTP on 8024, its ledger over HTTP on 8025: nothing else may take that one.
    assert place["HUB_SMTP_URL"] == "smtp://127.0.0.1:8024"


def test_the_first_screen_names_every_port_the_demo_takes() -> None:
    demo = Settings(database_url="postgresql+psycopg2://me@db/orders_demo", api_port=8020)
    assert "127.0.0.1:8020-8025" in describe(demo)
