"""``python -m sandbox`` (``make sandbox``): the sandbox systems on the configured URLs.

A development tool, not part of the hub: it reads the hub's settings for each system's URL and
token and serves them in the foreground until Ctrl-C or SIGTERM: the ERP, warehouse and
accounting always, the SMTP server too when the notify step is on (``HUB_NOTIFY_ENABLED``).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from hub.core.registry import REGISTRY
from hub.observability.logs import configure_logging
from hub.settings import get_settings
from sandbox.server import run_sandbox


def main() -> None:
    settings = get_settings()
    # The hub's log format (HUB_LOG_FORMAT): JSON lines beside the hub's own under var/.
    configure_logging("sandbox", fmt=settings.log_format, level=settings.log_level)
    erp, warehouse, accounting = (
        settings.systems[name] for name in ("erp", "warehouse", "accounting")
    )
    # The SMTP sandbox only where the notify step is on (the pipeline calls its system).
    smtp = None
    if "smtp" in REGISTRY.systems_of(settings.pipeline.steps):
        where = urlsplit(settings.systems["smtp"].url)
        smtp = (where.hostname or "127.0.0.1", where.port or 25)
    run_sandbox(
        host=urlsplit(erp.url).hostname or "127.0.0.1",
        erp_port=urlsplit(erp.url).port or 80,
        warehouse_port=urlsplit(warehouse.url).port or 80,
        accounting_port=urlsplit(accounting.url).port or 80,
        erp_token=erp.token.get_secret_value(),
        warehouse_token=warehouse.token.get_secret_value(),
        accounting_token=accounting.token.get_secret_value(),
        smtp=smtp,
    )


if __name__ == "__main__":
    main()
