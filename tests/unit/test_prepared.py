"""How a ``text()`` statement becomes a PREPARE and an EXECUTE (no database: the strings)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from hub.db.prepared import Prepared

STATEMENT = text(
    "SELECT CAST(:order_id AS uuid), '{}'::jsonb, :step, :order_id "
    "WHERE :step = ANY(CAST(:before AS text[]))"
)


def test_each_parameter_gets_one_number_in_order_of_first_use_and_casts_stay() -> None:
    prepared = Prepared("hub_example", STATEMENT)

    assert prepared.parameters == ["order_id", "step", "before"]
    assert prepared.prepare_sql == (
        "PREPARE hub_example AS SELECT CAST($1 AS uuid), '{}'::jsonb, $2, $1 "
        "WHERE $2 = ANY(CAST($3 AS text[]))"
    )
    assert prepared.execute_sql == "EXECUTE hub_example(%(order_id)s, %(step)s, %(before)s)"


def test_a_missing_parameter_is_named_before_anything_is_sent() -> None:
    prepared = Prepared("hub_example", STATEMENT)

    with pytest.raises(ValueError, match="hub_example needs the parameters before, step"):
        prepared.execute(None, {"order_id": "x"})  # type: ignore[arg-type]
