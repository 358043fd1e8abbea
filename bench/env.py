"""Where a bench or chaos stack lives: its own database, queue prefix and ports.

The environment is set before any hub module reads its settings, so the bench process and the
children it starts (which inherit it) agree on every address, and a demo, the tests or another
bench on the same machine never see this stack's rows, queues or ports.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from sqlalchemy.engine import make_url


@dataclass(frozen=True)
class StackPlace:
    database: str
    queue_prefix: str
    # The API listens here, the sandbox systems on the next three ports, a baseline on the 4th.
    port_base: int

    @property
    def api_port(self) -> int:
        return self.port_base

    @property
    def baseline_port(self) -> int:
        return self.port_base + 4

    def env(self, **extra: str) -> dict[str, str]:
        """HUB_* settings of this stack; the broker (and its vhost) is the caller's."""
        base = make_url(
            os.environ.get("HUB_DATABASE_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/hub")
        )
        database_url = base.set(drivername="postgresql+psycopg2", database=self.database)
        return {
            "HUB_DATABASE_URL": database_url.render_as_string(hide_password=False),
            "HUB_QUEUE_PREFIX": self.queue_prefix,
            "HUB_API_HOST": "127.0.0.1",
            "HUB_API_PORT": str(self.api_port),
            "HUB_ERP_URL": f"http://127.0.0.1:{self.port_base + 1}",
            "HUB_WAREHOUSE_URL": f"http://127.0.0.1:{self.port_base + 2}",
            "HUB_ACCOUNTING_URL": f"http://127.0.0.1:{self.port_base + 3}",
            **extra,
        }

    def apply(self, **extra: str) -> dict[str, str]:
        """Put the settings into this process's environment (before anything reads them)."""
        env = self.env(**extra)
        os.environ.update(env)
        from hub.settings import get_settings

        get_settings.cache_clear()
        return env


# The bench's login for the operator pages (row i reads them).
OPERATOR = ("bench-operator", "bench-operator-password-7e1a")

BENCH = StackPlace(database="hub_bench", queue_prefix="hubbench", port_base=18500)
# HUB_CHAOS_PORT_BASE moves the chaos stack, and with it its own RabbitMQ node and PostgreSQL
# cluster (bench.chaos.services numbers their ports from the same base).
CHAOS = StackPlace(
    database="hub_chaos",
    queue_prefix="hubchaos",
    port_base=int(os.environ.get("HUB_CHAOS_PORT_BASE", "18510")),
)
