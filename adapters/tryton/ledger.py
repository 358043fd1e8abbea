"""What Tryton applied for the hub, read back from Tryton itself (``hub reconcile``'s oracle).

A sandbox keeps a ledger of effects by idempotency key; Tryton keeps its own records, found by
the sale's reference (the hub's order id). Each system's effect is what its step leaves behind:

- erp (inventory): a sale whose shipment's stock is assigned (or further on);
- warehouse (fulfillment): a customer shipment of such a sale, done;
- accounting (invoice): a customer invoice of such a sale, posted (or paid).

A sale still waiting for stock (an ``out_of_stock`` failure) is no reservation, so no effect.
Each effect's id is the number Tryton gave the record, the downstream id the hub keeps.
"""

from __future__ import annotations

import datetime
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from adapters.tryton.rpc import TrytonRpc
from adapters.tryton.workflow import INVOICE_DONE

ASSIGNED_OR_FURTHER = ("assigned", "picked", "packed", "shipped", "done")


@dataclass(frozen=True)
class TrytonEffect:
    order_id: str  # the sale's reference
    system: str  # erp, warehouse or accounting
    id: str  # the record's number
    at: float  # when Tryton last wrote it (seconds since the epoch)


def _at(record: dict[str, Any]) -> float:
    stamp = record.get("write_date") or record.get("create_date")
    return stamp.timestamp() if isinstance(stamp, datetime.datetime) else 0.0


def read_effects(rpc: TrytonRpc, only: Collection[str] | None = None) -> list[TrytonEffect]:
    """Every effect Tryton holds for the hub's orders (those in ``only``, if given)."""
    domain: list[Any] = [["reference", "!=", None]]
    if only is not None:
        domain = [["reference", "in", sorted(only)]]
    sales = rpc.call(
        "model.sale.sale.search_read",
        domain,
        0,
        None,
        None,
        ["reference", "number", "shipments", "invoices", "create_date", "write_date"],
    )
    shipment_ids = sorted({i for sale in sales for i in sale["shipments"]})
    invoice_ids = sorted({i for sale in sales for i in sale["invoices"]})
    stamps = ["number", "state", "create_date", "write_date"]
    shipments = {
        s["id"]: s for s in rpc.call("model.stock.shipment.out.read", shipment_ids, stamps)
    }
    invoices = {
        i["id"]: i for i in rpc.call("model.account.invoice.read", invoice_ids, [*stamps, "type"])
    }
    effects = []
    for sale in sales:
        order_id = str(sale["reference"])
        own = [shipments[i] for i in sale["shipments"] if i in shipments]
        if any(s["state"] in ASSIGNED_OR_FURTHER for s in own):
            effects.append(TrytonEffect(order_id, "erp", str(sale["number"]), _at(sale)))
        for shipment in own:
            if shipment["state"] == "done":
                effects.append(
                    TrytonEffect(order_id, "warehouse", str(shipment["number"]), _at(shipment))
                )
        for invoice_id in sale["invoices"]:
            invoice = invoices.get(invoice_id)
            if invoice and invoice["type"] == "out" and invoice["state"] in INVOICE_DONE:
                effects.append(
                    TrytonEffect(order_id, "accounting", str(invoice["number"]), _at(invoice))
                )
    return effects
