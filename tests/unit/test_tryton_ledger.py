"""What reconcile counts as each system's effect in Tryton, from Tryton's own records."""

from __future__ import annotations

import datetime
import json
from typing import Any

from adapters.tryton.codec import decode
from adapters.tryton.ledger import TrytonEffect, read_effects

STAMP = datetime.datetime(2026, 12, 3, 12, 0, tzinfo=datetime.UTC)


class FakeRpc:
    """Tryton's answers to the three reads ``read_effects`` makes."""

    def __init__(
        self,
        sales: list[dict[str, Any]],
        shipments: dict[int, str],
        invoices: dict[int, tuple[str, str]],
    ) -> None:
        self.sales, self.shipments, self.invoices = sales, shipments, invoices

    def call(self, method: str, *params: Any) -> Any:
        if method == "model.sale.sale.search_read":
            return self.sales
        if method == "model.stock.shipment.out.read":
            return [
                {"id": i, "number": f"SH{i}", "state": self.shipments[i], "write_date": STAMP}
                for i in params[0]
            ]
        if method == "model.account.invoice.read":
            return [
                {
                    "id": i,
                    "number": f"IN{i}",
                    "state": self.invoices[i][0],
                    "type": self.invoices[i][1],
                }
                for i in params[0]
            ]
        raise AssertionError(method)


def sale(reference: str, number: str, shipments: list[int], invoices: list[int]) -> dict[str, Any]:
    return {
        "reference": reference,
        "number": number,
        "shipments": shipments,
        "invoices": invoices,
        "create_date": STAMP,
        "write_date": None,
    }


def test_each_systems_effect_is_what_its_step_leaves_behind() -> None:
    rpc = FakeRpc(
        [
            sale("done", "S1", [1], [10, 11]),
            sale("waiting", "S2", [2], []),
            sale("assigned", "S3", [3], []),
        ],
        {1: "done", 2: "waiting", 3: "assigned"},
        {10: ("posted", "out"), 11: ("draft", "out")},
    )

    effects = read_effects(rpc)  # type: ignore[arg-type]

    at = STAMP.timestamp()
    assert sorted(effects, key=lambda e: (e.order_id, e.system)) == [
        TrytonEffect("assigned", "erp", "S3", at),
        TrytonEffect("done", "accounting", "IN10", 0.0),
        TrytonEffect("done", "erp", "S1", at),
        TrytonEffect("done", "warehouse", "SH1", at),
    ]


def test_two_shipments_done_for_one_sale_are_two_effects() -> None:
    rpc = FakeRpc([sale("o", "S1", [1, 2], [])], {1: "done", 2: "done"}, {})
    found = [e.id for e in read_effects(rpc) if e.system == "warehouse"]  # type: ignore[arg-type]
    assert found == ["SH1", "SH2"]


def test_a_tryton_datetime_is_read_as_utc() -> None:
    fields = {"year": 2026, "month": 12, "day": 3, "hour": 12, "minute": 0, "second": 0}
    wire = json.dumps({"__class__": "datetime", **fields, "microsecond": 0})
    assert json.loads(wire, object_hook=decode) == STAMP
