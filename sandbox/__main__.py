"""``python -m sandbox`` (``make sandbox``): the sandbox systems on the configured URLs.

A development tool, not part of the hub: it reads the hub's settings for each system's URL and
token and serves them in the foreground until Ctrl-C or SIGTERM: the ERP, warehouse and
accounting always, and the sandbox of every other system the pipeline calls (an optional step
that is off calls none).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from hub.core.registry import REGISTRY
from hub.core.system_settings import SystemSettings
from hub.observability.logs import configure_logging
from hub.settings import get_settings
from sandbox.server import SYSTEMS, Place, run_sandbox

# Where a URL without a port points.
DEFAULT_PORTS = {"http": 80, "https": 443}


def place_of(system: SystemSettings) -> Place:
    where = urlsplit(system.url)
    port = where.port or DEFAULT_PORTS.get(where.scheme)
    if port is None:
        raise SystemExit(f"sandbox: the URL {system.url!r} names no port")
    return Place(where.hostname or "127.0.0.1", port, system.token.get_secret_value())


def main() -> None:
    settings = get_settings()
    # The hub's log format (HUB_LOG_FORMAT): JSON lines beside the hub's own under var/.
    configure_logging("sandbox", fmt=settings.log_format, level=settings.log_level)
    # An optional step that is off calls its system never: no sandbox for it.
    systems = dict.fromkeys([*SYSTEMS, *REGISTRY.systems_of(settings.pipeline.steps)])
    run_sandbox({name: place_of(settings.systems[name]) for name in systems})


if __name__ == "__main__":
    main()
