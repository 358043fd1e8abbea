"""Failure groups on real PostgreSQL and RabbitMQ: the groups, and the commands that act on one."""

from __future__ import annotations

import re

from sqlalchemy import select
from typer.testing import CliRunner

from hub.core.failure_groups import GroupKey
from hub.db.engine import unit_of_work
from hub.db.models import Failure, IntegrationEvent, Order
from hub.entrypoints.cli.main import cli
from hub.services.failure_groups import find_group, open_groups
from tests import support
from tests.support import make_failure


def out_of_stock(sku: str, wanted: int, available: int) -> Failure:
    return make_failure(message=f"{sku}: {wanted} wanted, {available} available")


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), terminal_width=220)
    return result.exit_code, result.output


def states(failures: list[Failure]) -> list[str]:
    with unit_of_work() as session:
        return [
            session.scalars(select(Failure.state).where(Failure.id == f.id)).one() for f in failures
        ]


def stock_group_id() -> str:
    return GroupKey.of(
        step="inventory",
        kind="permanent",
        code="out_of_stock",
        message="SKU-1: 1 wanted, 0 available",
    ).group_id


def test_open_failures_are_grouped_by_step_kind_code_and_masked_message() -> None:
    stock = [out_of_stock("SKU-020", 1, 0), out_of_stock("SKU-031", 4, 1)]
    unknown = [make_failure(message=f"unknown sku ZZ-{n}") for n in range(3)]
    down = make_failure(
        step="fulfillment", kind="exhausted", http_status=503, code="down", message="down"
    )

    with unit_of_work() as session:
        groups = open_groups(session)

    assert [(g.count, g.key.fingerprint) for g in groups] == [
        (3, "unknown sku <id>"),
        (2, "<id>: # wanted, # available"),
        (1, "down"),
    ]
    unknowns, stocks, downs = groups
    assert set(stocks.order_ids) == {f.order_id for f in stock}
    assert stocks.group_id == stock_group_id()
    assert stocks.first_seen == stock[0].first_failed_at
    assert stocks.last_seen == stock[1].last_failed_at
    assert stocks.sample.message == "SKU-031: 4 wanted, 1 available"
    assert downs.sample.id == down.id and downs.key.step == "fulfillment"
    assert set(unknowns.order_ids) == {f.order_id for f in unknown}


def test_a_group_holds_only_open_failures_and_is_gone_when_none_is_left() -> None:
    kept = out_of_stock("SKU-001", 1, 0)
    closed = out_of_stock("SKU-002", 1, 0)
    with unit_of_work() as session:
        row = session.get(Failure, closed.id)
        assert row is not None
        row.state = "discarded"

    with unit_of_work() as session:
        group = find_group(session, stock_group_id())
        assert group is not None and group.order_ids == (kept.order_id,)
        row = session.get(Failure, kept.id)
        assert row is not None
        row.state = "replayed"

    with unit_of_work() as session:
        assert find_group(session, stock_group_id()) is None


def test_hub_failures_groups_lists_each_cause_once_with_its_id_and_count() -> None:
    for n in range(3):
        out_of_stock(f"SKU-{n:03d}", n + 1, 0)
    make_failure(message="unknown sku ZZ-9")

    code, screen = run("failures", "groups")

    assert code == 0, screen
    assert "2 failure group(s), 4 failures" in screen
    row = next(line for line in screen.splitlines() if stock_group_id() in line)
    assert re.search(r"\b3\b.*inventory.*permanent.*409.*out_of_stock", row), row
    assert "<id>: # wanted, # available" in row and "SKU-002: 3 wanted, 0 available" in row


def test_hub_failures_list_shows_the_orders_of_one_group() -> None:
    stock = [out_of_stock("SKU-001", 1, 0), out_of_stock("SKU-002", 2, 0)]
    other = make_failure(message="unknown sku ZZ-9")

    code, screen = run("failures", "list", "--group", stock_group_id())

    assert code == 0, screen
    assert "2 open failure(s)" in screen
    assert all(str(f.order_id) in screen for f in stock)
    assert str(other.order_id) not in screen


def test_hub_failures_list_has_an_external_id_column() -> None:
    failure = out_of_stock("SKU-001", 1, 0)
    with unit_of_work() as session:
        order = session.get(Order, failure.order_id)
        assert order is not None
        external = order.external_id

    code, screen = run("failures", "list")

    assert code == 0, screen
    header = next(line for line in screen.splitlines() if "failure id" in line)
    assert "external id" in header
    row = next(line for line in screen.splitlines() if str(failure.id) in line)
    assert str(failure.order_id) in row and external in row


def test_hub_replay_group_dry_run_changes_nothing_then_replays_the_group_once() -> None:
    stock = [out_of_stock(f"SKU-{n:03d}", 1, 0) for n in range(3)]
    other = make_failure(message="unknown sku ZZ-9")
    group = stock_group_id()

    code, screen = run("replay", "--group", group, "--dry-run")
    assert code == 0, screen
    assert "dry run: would replay 3 failure(s)" in screen
    assert states([*stock, other]) == ["open"] * 4

    code, screen = run("replay", "--group", group, "--rate", "50", "--operator", "night-ops")
    assert code == 0, screen
    assert "replayed 3, skipped 0" in screen
    assert states([*stock, other]) == ["replayed"] * 3 + ["open"]
    assert support.queue_depth(support.work_queue_names()[0]) == 3

    code, screen = run("replay", "--group", group)
    assert code == 0, screen
    assert "nothing to replay" in screen
    with unit_of_work() as session:
        replays = session.scalars(
            select(IntegrationEvent).where(IntegrationEvent.event_type == "failure.replayed")
        ).all()
    assert sorted(e.detail["operator"] for e in replays) == ["night-ops"] * 3


def test_hub_discard_group_needs_a_reason_and_closes_only_that_group() -> None:
    stock = [out_of_stock(f"SKU-{n:03d}", 1, 0) for n in range(2)]
    other = make_failure(message="unknown sku ZZ-9")
    group = stock_group_id()

    code, screen = run("discard", "--group", group)
    assert code != 0 and "a reason is required" in screen
    code, screen = run("discard", "--group", group, "--reason", "void", "--dry-run")
    assert code == 0 and "dry run: would cancel 2 failure(s)" in screen, screen
    assert states([*stock, other]) == ["open"] * 3

    code, screen = run("discard", "--group", group, "--reason", "sku retired")

    assert code == 0, screen
    # Discarding cancels the orders now (nothing was done for them: cancelled at once).
    assert "cancelled 2, skipped 0" in screen
    assert states([*stock, other]) == ["cancelled", "cancelled", "open"]


def test_a_group_id_that_is_not_one_is_refused() -> None:
    code, screen = run("replay", "--group", "'; drop table failures")

    assert code == 2
    assert "is not a group id" in screen
