"""Where ``hub demo`` runs on a real stack: a place of its own beside the configured hub.

Run with a hub's settings (``HUB_*`` set, or a production ``.env``), the demo once posted its
orders into that hub's database and queues, where the hub's own workers took them against their
own downstreams. Now it derives a place from the settings instead: the database
``<database>_demo`` (created if missing), the queue prefix ``<prefix>demo`` and ports from
``HUB_API_PORT`` + 20 (the API) to + 23 (its sandbox ERP, warehouse and accounting) and + 24
(the SMTP sandbox, its ledger on + 25), on this machine. The broker's vhost stays the
configured one: making a vhost takes RabbitMQ's administrator; the prefix keeps the queues
apart. ``hub demo --here`` runs on the settings as they are.
"""

from __future__ import annotations

from sqlalchemy.engine import make_url

from hub.settings import Settings

PORT_OFFSET = 20
SANDBOXES = ("erp", "warehouse", "accounting")


def demo_place(settings: Settings) -> dict[str, str]:
    """The ``HUB_*`` values of the demo's own place, derived from ``settings``."""
    database = make_url(settings.database_url)
    api_port = settings.api_port + PORT_OFFSET
    place = {
        "HUB_DATABASE_URL": database.set(
            database=f"{database.database or 'hub'}_demo"
        ).render_as_string(hide_password=False),
        # The prefix pattern allows 31 characters: keep room for "demo".
        "HUB_QUEUE_PREFIX": f"{settings.queue_prefix[:27]}demo",
        "HUB_API_PORT": str(api_port),
    }
    for offset, system in enumerate(SANDBOXES, 1):
        place[f"HUB_{system.upper()}_URL"] = f"http://127.0.0.1:{api_port + offset}"
    place["HUB_SMTP_URL"] = f"smtp://127.0.0.1:{api_port + len(SANDBOXES) + 1}"
    return place


def describe(settings: Settings) -> str:
    """One line naming the place, for the demo's first screen."""
    database = make_url(settings.database_url).database
    return (
        f"the demo's own place: database {database}, queue prefix {settings.queue_prefix}, "
        f"API and sandboxes on 127.0.0.1:{settings.api_port}-{settings.api_port + 5} "
        "(hub demo --here runs on the settings as they are)"
    )
