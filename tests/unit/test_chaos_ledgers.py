"""The chaos run's own reading of the sandbox ledgers (``judge_ledgers``), and where its own
services listen: a table of cases, no I/ORDER."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench.chaos.services import OwnServices, ServiceError, broker_layout, check_base
from bench.chaos.verdict import LIVE, LOST, NOT_CANCELLED, TWICE, judge_ledgers
from bench.cluster.__main__ import DEFAULT_LAYOUT
from bench.cluster.layout import Layout
from bench.cluster_chaos.__main__ import LAYOUT as CLUSTER_CHAOS_LAYOUT

ORDER = "00000000-0000-0000-0000-000000000001"
STEPS = ("inventory", "fulfillment")


def effect(step: str, id_: str, *, undoes: str | None = None) -> dict[str, Any]:
    key = f"{ORDER}:{step}" + (":compensate" if undoes is not None else "")
    entry: dict[str, Any] = {"idempotency_key": key, "id": id_}
    if undoes is not None:
        entry["compensates"] = undoes
    return entry


def judge(entries: list[dict[str, Any]], status: str, *, cancelled: bool) -> list[tuple[str, str]]:
    by_step = {s: [e for e in entries if e["idempotency_key"].split(":")[1] == s] for s in STEPS}
    taken = {ORDER} if cancelled else set()
    found = judge_ledgers(by_step, {ORDER: status}, taken, undoable=set(STEPS))
    return [(p.problem, p.step) for p in found]


DONE = [effect("inventory", "R1"), effect("fulfillment", "S1")]
UNDONE = [effect("fulfillment", "C1", undoes="S1"), effect("inventory", "C2", undoes="R1")]


@pytest.mark.parametrize(
    ("entries", "status", "cancelled", "problems"),
    [
        # completed once, never undone: fine
        (DONE, "completed", False, []),
        # cancelled, each effect undone once naming it: fine
        (DONE + UNDONE, "cancelled", True, []),
        # cancelled before anything was done: nothing to undo
        ([], "cancelled", True, []),
        # cancelled half way: the reservation made and undone, no shipment ever
        ([DONE[0], UNDONE[1]], "cancelled", True, []),
        # a completed order missing an effect is lost
        (DONE[:1], "completed", False, [(LOST, "fulfillment")]),
        # an effect applied twice
        (DONE + DONE[1:], "completed", False, [(TWICE, "fulfillment")]),
        # a compensation applied twice
        (DONE + UNDONE + UNDONE[:1], "cancelled", True, [(TWICE, "fulfillment")]),
        # an effect left live for a cancelled order
        (DONE + UNDONE[1:], "cancelled", True, [(LIVE, "fulfillment")]),
        # a compensation without its effect
        ([DONE[0], *UNDONE], "cancelled", True, [(LIVE, "fulfillment")]),
        # a compensation that undid another effect
        (
            [*DONE, UNDONE[0], effect("inventory", "C2", undoes="R9")],
            "cancelled",
            True,
            [(LIVE, "inventory")],
        ),
        # an order never cancelled but undone downstream
        (DONE + UNDONE[:1], "completed", False, [(LIVE, "fulfillment")]),
        # a cancel taken, but the order did not end cancelled
        (DONE + UNDONE, "cancelling", True, [(NOT_CANCELLED, "")]),
    ],
)
def test_the_ledgers_say_what_is_wrong_with_an_order(
    entries: list[dict[str, Any]], status: str, cancelled: bool, problems: list[tuple[str, str]]
) -> None:
    assert judge(entries, status, cancelled=cancelled) == problems


def test_a_step_without_compensation_is_not_dangling_when_its_order_is_cancelled() -> None:
    by_step = {"notify": [{"idempotency_key": f"{ORDER}:notify", "id": "M1"}]}
    assert judge_ledgers(by_step, {ORDER: "cancelled"}, {ORDER}, undoable=set()) == []


def ports(layout: Layout) -> set[int]:
    low, high = layout.ctl_ports
    nodes = layout.nodes
    return {*(n.amqp_port for n in nodes), *(n.dist_port for n in nodes), *range(low, high + 1)}


def test_the_chaos_runs_services_listen_below_the_ephemeral_range_on_ports_of_their_own() -> None:
    own = OwnServices(18510, Path("/tmp/chaos"))
    broker = ports(own.broker.layout)
    taken = {5432, 5672, 25672, 15672, *range(35672, 35683), *range(18510, 18515)}
    assert max(broker | {own.postgres.port}) < 32768
    assert not taken & (broker | {own.postgres.port})
    assert own.postgres.port not in broker
    assert own.broker.layout.node(1).name == "hubnemesis1@localhost"


def test_the_local_clusters_ports_are_below_the_ephemeral_range_and_apart() -> None:
    chaos = ports(broker_layout(18510, Path("/tmp/chaos")))
    cluster, cluster_chaos = ports(DEFAULT_LAYOUT), ports(CLUSTER_CHAOS_LAYOUT)
    assert max(chaos | cluster | cluster_chaos) < 32768
    assert not cluster & cluster_chaos and not chaos & (cluster | cluster_chaos)


@pytest.mark.parametrize("base", [80, 32740, 40000])
def test_a_base_whose_ports_reach_the_ephemeral_range_or_below_1024_is_refused(base: int) -> None:
    with pytest.raises(ServiceError, match="HUB_CHAOS_PORT_BASE"):
        check_base(base)
