"""The hot path's statements as PostgreSQL prepared statements: parsed and planned once per
connection, not on every call.

psycopg2 sends a statement as text, so PostgreSQL parses and plans each of the hot path's
CTEs every time it runs. For a step's start, planning took about as long as running it
(EXPLAIN ANALYZE on the bench's database: 0.6 ms of planning to 0.7 ms of execution), and
PostgreSQL's share of an order's CPU is the part of the pipeline that grew with the step rule.
A ``Prepared`` is PREPAREd on a connection the first time that connection runs it, and
EXECUTEd by name from then on.

Which statements a connection holds is kept in the DBAPI connection's ``info``, which lives and
dies with it: a new connection (the pool's, after a PostgreSQL restart or a failover to the
standby) prepares again. PREPARE is not undone by a rollback, so a name recorded after a
successful PREPARE stays true whatever the transaction around it does. Behind a connection
pooler in transaction mode ``HUB_PREPARED_STATEMENTS=false`` sends the statements as text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, CursorResult, TextClause
from sqlalchemy.util.typing import TupleAny

from hub.settings import get_settings

# A bound parameter of ``text()``, as SQLAlchemy finds them: ``:name``, not a ``::type`` cast.
_PARAMETER = re.compile(r"(?<![:\w\\]):(\w+)(?!:)")
# What the connection's ``info`` holds: the names prepared on it so far.
_PREPARED = "hub_prepared_statements"


class Prepared:
    """One statement of ``text()`` with ``:named`` parameters, run as a prepared statement."""

    def __init__(self, name: str, statement: TextClause) -> None:
        self.name = name
        self.statement = statement
        self.parameters: list[str] = []
        body = _PARAMETER.sub(self._number, statement.text)
        self.prepare_sql = f"PREPARE {name} AS {body}"
        arguments = ", ".join(f"%({parameter})s" for parameter in self.parameters)
        self.execute_sql = f"EXECUTE {name}({arguments})"

    def _number(self, match: re.Match[str]) -> str:
        parameter = match.group(1)
        if parameter not in self.parameters:
            self.parameters.append(parameter)
        return f"${self.parameters.index(parameter) + 1}"

    def execute(
        self, connection: Connection, parameters: Mapping[str, Any]
    ) -> CursorResult[*TupleAny]:
        missing = set(self.parameters) - set(parameters)
        if missing:
            raise ValueError(f"{self.name} needs the parameters {', '.join(sorted(missing))}")
        if not get_settings().prepared_statements:
            return connection.execute(self.statement, dict(parameters))
        pooled = connection.connection
        prepared: set[str] = pooled.info.setdefault(_PREPARED, set())
        if self.name not in prepared:
            # On the driver's own cursor: a one-off per connection, not one of the statements
            # the hot path counts per move (tests/integration/test_hot_path.py).
            cursor = pooled.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                cursor.execute(self.prepare_sql)
            finally:
                cursor.close()
            prepared.add(self.name)
        return connection.exec_driver_sql(self.execute_sql, dict(parameters))
