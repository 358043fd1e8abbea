"""Which database errors mean "PostgreSQL is away" (restarting, failing over, unreachable).

Such an error is no fault of the statement: the caller waits and tries again (a step is
deferred with no attempt spent, intake answers 503 with Retry-After). Everything else (a
constraint, a bug) is not retried. During a Patroni failover the hub meets more than refused
connections: a connection cut mid-statement, a server shutting down, a standby that takes no
writes; all of them count.
"""

from __future__ import annotations

from sqlalchemy import URL
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

# SQLSTATE classes and codes of a server that is going, gone or not yet the primary.
_AWAY_CLASSES = ("08",)  # connection exceptions
_AWAY_CODES = {
    "57P01",  # admin_shutdown: a fast stop, a demotion
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now: starting up, or in recovery
    "25006",  # read_only_sql_transaction: a connection to a member just demoted
}


class DatabaseUnavailable(Exception):
    """PostgreSQL is away; the operation may be tried again once a primary answers."""


# query_canceled: a statement timeout (or a cancel request) ended the statement. The server is
# there and answered: a slow query, not PostgreSQL away.
STATEMENT_TIMEOUT = "57014"


def is_statement_timeout(exc: BaseException) -> bool:
    return getattr(getattr(exc, "orig", None), "pgcode", None) == STATEMENT_TIMEOUT


def is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    if isinstance(exc, PoolTimeout):
        # Every connection of this process's pool stayed busy for the pool's timeout (a
        # worker's threads share 16): PostgreSQL too slow to answer them, so wait and retry.
        return True
    if isinstance(exc, DBAPIError):
        code = getattr(exc.orig, "pgcode", None) or ""
        return code in _AWAY_CODES or code[:2] in _AWAY_CLASSES
    return False


def where(url: URL) -> str:
    """``host:port/database`` of a URL, every host of a multi-host one (``?host=a:1&host=b:2``)."""
    hosts = url.query.get("host")
    if hosts:
        listed = ",".join([hosts] if isinstance(hosts, str) else hosts)
        return f"{listed}/{url.database}"
    return f"{url.host or 'localhost'}:{url.port or 5432}/{url.database}"
