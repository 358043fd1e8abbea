"""Where ``hub demo`` runs on a real stack: a place of its own beside the configured hub.

Run with a hub's settings (``HUB_*`` set, or a production ``.env``), the demo once posted its
orders into that hub's database and queues, where the hub's own workers took them against their
own downstreams. Now it derives a place from the settings instead: the database
``<database>_demo`` (created if missing), the queue prefix ``<prefix>demo`` and ports from
``HUB_API_PORT`` + 20 (the API) on: one a system of the registry, in its order (the ERP,
warehouse and accounting on + 21 to + 23), two for one reached over another protocol than HTTP
(its /_ endpoints on the next port: ``adapters.control.control_url``), on this machine. The
broker's vhost stays the configured one: making a vhost takes RabbitMQ's administrator; the
prefix keeps the queues apart. ``hub demo --here`` runs on the settings as they are.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from sqlalchemy.engine import make_url

from adapters.control import control_url
from hub.core.registry import REGISTRY
from hub.settings import Settings

PORT_OFFSET = 20


def sandbox_urls(api_port: int) -> dict[str, str]:
    """Each system's sandbox URL on the ports after ``api_port``, in registry order."""
    urls: dict[str, str] = {}
    taken = api_port
    for name, system in REGISTRY.systems.items():
        urls[name] = f"{urlsplit(system.url).scheme}://127.0.0.1:{taken + 1}"
        taken = _last_port(urls[name])
    return urls


def _last_port(url: str) -> int:
    """The highest port a sandbox at ``url`` takes: its own, or its /_ endpoints' after it."""
    return int(urlsplit(control_url(url)).port or 0)


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
    for system, url in sandbox_urls(api_port).items():
        place[f"HUB_{system.upper()}_URL"] = url
    return place


def describe(settings: Settings) -> str:
    """One line naming the place, for the demo's first screen."""
    database = make_url(settings.database_url).database
    last_port = _last_port(list(sandbox_urls(settings.api_port).values())[-1])
    return (
        f"the demo's own place: database {database}, queue prefix {settings.queue_prefix}, "
        f"API and sandboxes on 127.0.0.1:{settings.api_port}-{last_port} "
        "(hub demo --here runs on the settings as they are)"
    )
