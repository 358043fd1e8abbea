"""Is PostgreSQL / RabbitMQ there? Answers that name the service, where we looked and what to do."""

from __future__ import annotations

from dataclasses import dataclass

from kombu.connection import Connection
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from hub.settings import Settings


@dataclass(frozen=True)
class ServiceDown:
    service: str
    where: str
    reason: str
    how_to_start: str

    def __str__(self) -> str:
        return (
            f"{self.service} is not reachable at {self.where}: {self.reason}\n"
            f"  start it with: {self.how_to_start}"
        )


PG_START = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
RABBIT_START = "rabbitmq-server -detached"


def postgres_problem(settings: Settings, *, timeout: float = 3.0) -> ServiceDown | None:
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":  # trial mode
        from hub.trial import sqlite_problem

        return sqlite_problem(settings)
    where = f"{url.host or 'localhost'}:{url.port or 5432}/{url.database}"
    engine = create_engine(url, connect_args={"connect_timeout": max(1, int(timeout))})
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        if "does not exist" in reason:
            return ServiceDown("PostgreSQL", where, reason, "make migrate  (creates it)")
        return ServiceDown("PostgreSQL", where, reason, f"{PG_START}  (then: make migrate)")
    finally:
        engine.dispose()
    return None


def rabbitmq_problem(settings: Settings, *, timeout: float = 3.0) -> ServiceDown | None:
    if settings.embedded_broker:  # trial mode
        from hub.trial import broker_problem

        return broker_problem(settings)
    connection = Connection(settings.broker_url, connect_timeout=timeout)
    where = broker_where(settings.broker_url)
    try:
        ensure_any_node(connection, timeout=timeout)
    except Exception as exc:
        return ServiceDown("RabbitMQ", where, str(exc) or type(exc).__name__, RABBIT_START)
    finally:
        connection.release()
    return None


def broker_where(url: str) -> str:
    """Every node of a (failover) broker URL, passwords masked: where we looked."""
    return "; ".join(Connection(part).as_uri() for part in url.split(";") if part.strip())


def ensure_any_node(connection: Connection, *, timeout: float) -> None:
    """Connect to the first node of the failover list that answers.

    kombu moves to the next URL of the list after each failed attempt, so a list of n nodes
    needs n retries for every node to be tried (a single URL keeps its one retry).
    """
    nodes = max(1, len(connection.alt))
    connection.ensure_connection(max_retries=nodes, timeout=timeout * nodes)


def problems(settings: Settings) -> list[ServiceDown]:
    return [p for p in (postgres_problem(settings), rabbitmq_problem(settings)) if p]
