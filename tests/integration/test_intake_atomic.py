"""Intake is one transaction: an order and its outbox row are stored together or not at all.

The failure is driven between the writes: a trigger of the test's own makes the database refuse
the outbox row, after the order, its lines and its steps were written in the same transaction
(or the same statement, on PostgreSQL's one-statement path). Nothing of the order may remain,
and once the outbox takes rows again the same order is accepted as new (a failed intake binds
neither its external id nor its Idempotency-Key).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from hub.core.schemas import OrderIn
from hub.db import migrate
from hub.db.engine import engine_for, get_engine, unit_of_work
from hub.db.models import IntegrationEvent, Order, OrderLine, OutboxMessage, StepOutcome
from hub.entrypoints.api import create_api
from hub.services import intake
from tests import support
from tests.factories import order_payload

REFUSED = "outbox refused by the test"
MODELS = (Order, OrderLine, StepOutcome, OutboxMessage, IntegrationEvent)


def stored(session: Session) -> dict[str, int]:
    """Rows of every table an intake writes (the audit's received event included)."""
    return {
        model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
        for model in MODELS
    }


NOTHING = {model.__tablename__: 0 for model in MODELS}


@pytest.fixture
def outbox_refuses() -> Iterator[None]:
    """PostgreSQL refuses every outbox row until the test ends."""
    with get_engine().begin() as connection:
        connection.execute(
            text(
                "CREATE FUNCTION test_refuse_outbox() RETURNS trigger LANGUAGE plpgsql AS "
                f"$$ BEGIN RAISE EXCEPTION '{REFUSED}'; END $$"
            )
        )
        connection.execute(
            text(
                "CREATE TRIGGER test_refuse_outbox BEFORE INSERT ON outbox "
                "FOR EACH ROW EXECUTE FUNCTION test_refuse_outbox()"
            )
        )
    try:
        yield
    finally:
        allow_outbox(get_engine())


def allow_outbox(engine: Engine) -> None:
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("DROP TRIGGER IF EXISTS test_refuse_outbox ON outbox"))
            connection.execute(text("DROP FUNCTION IF EXISTS test_refuse_outbox()"))
        else:
            connection.execute(text("DROP TRIGGER IF EXISTS test_refuse_outbox"))


def an_order() -> OrderIn:
    return OrderIn.model_validate(order_payload())


@pytest.mark.usefixtures("outbox_refuses")
def test_the_one_statement_path_stores_nothing_when_the_outbox_row_fails() -> None:
    order = an_order()
    assert intake.hot_path.serves(get_engine()), "PostgreSQL takes the one-statement path"

    with pytest.raises(DBAPIError, match=REFUSED):
        intake.accept(order, idempotency_key="k-1", sender="tests")

    with unit_of_work() as session:
        assert stored(session) == NOTHING
    allow_outbox(get_engine())
    accepted = intake.accept(order, idempotency_key="k-1", sender="tests")
    assert accepted.created, "the failed intake bound neither the external id nor the key"


@pytest.mark.usefixtures("outbox_refuses")
def test_the_orm_path_rolls_back_the_order_its_lines_and_steps() -> None:
    order = an_order()

    with pytest.raises(DBAPIError, match=REFUSED), unit_of_work() as session:
        intake.accept_order(session, order, idempotency_key=None, sender="tests")
        pytest.fail("accept_order returned with its outbox row refused")

    with unit_of_work() as session:
        assert stored(session) == NOTHING
    allow_outbox(get_engine())
    with unit_of_work() as session:
        assert intake.accept_order(session, order, idempotency_key=None, sender="tests").created


@pytest.mark.usefixtures("outbox_refuses")
def test_over_http_a_failed_intake_is_a_server_error_with_nothing_stored() -> None:
    client = TestClient(
        create_api(), headers=support.api_key_headers(), raise_server_exceptions=False
    )
    payload = order_payload()

    refused = client.post("/orders", json=payload, headers={"Idempotency-Key": "k-2"})

    assert refused.status_code >= 500, refused.text
    with unit_of_work() as session:
        assert stored(session) == NOTHING
    allow_outbox(get_engine())
    accepted = client.post("/orders", json=payload, headers={"Idempotency-Key": "k-2"})
    assert accepted.status_code == 202, accepted.text


def test_trial_modes_sqlite_rolls_back_the_same_way(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hub.sqlite3'}"
    migrate.upgrade(url)
    engine = engine_for(url)
    with engine.begin() as connection:
        connection.execute(
            text(
                "CREATE TRIGGER test_refuse_outbox BEFORE INSERT ON outbox "
                f"BEGIN SELECT RAISE(ABORT, '{REFUSED}'); END"
            )
        )
    sessions = sessionmaker(bind=engine)
    order = an_order()

    with pytest.raises(DBAPIError, match=REFUSED), sessions() as session, session.begin():
        intake.accept_order(session, order, idempotency_key="k-3", sender="trial")

    with sessions() as session:
        assert stored(session) == NOTHING
    allow_outbox(engine)
    with sessions() as session, session.begin():
        assert intake.accept_order(session, order, idempotency_key="k-3", sender="trial").created
