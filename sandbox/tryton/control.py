"""What a test or the demo does to the local Tryton as its administrator: restock, count."""

from __future__ import annotations

from collections.abc import Mapping

from adapters.tryton.rpc import TrytonConnection, TrytonRpc
from sandbox.tryton.server import ADMIN_PASSWORD


def admin_rpc(url: str, database: str) -> TrytonRpc:
    return TrytonRpc(
        TrytonConnection(url=url, database=database, user="admin", password=ADMIN_PASSWORD)
    )


def restock(rpc: TrytonRpc, quantities: Mapping[str, int]) -> None:
    """Set each sku's on-hand quantity in the warehouse's storage, by a confirmed inventory."""
    (storage,) = rpc.call("model.stock.location.search", [["code", "=", "STO"]], 0, 1, None)
    products = rpc.call(
        "model.product.product.search_read",
        [["code", "in", sorted(quantities)]],
        0,
        None,
        None,
        ["code", "default_uom"],
    )
    lines = [{"product": p["id"], "quantity": float(quantities[p["code"]])} for p in products]
    (inventory,) = rpc.call(
        "model.stock.inventory.create",
        [{"location": storage, "lines": [["create", lines]]}],
    )
    rpc.call("model.stock.inventory.confirm", [inventory])


def counts(rpc: TrytonRpc, reference: str) -> dict[str, int]:
    """How many sales, done shipments and posted invoices Tryton has for one order."""
    sales = rpc.call(
        "model.sale.sale.search_read",
        [["reference", "=", reference]],
        0,
        None,
        None,
        ["shipments", "invoices"],
    )
    shipment_ids = [i for s in sales for i in s["shipments"]]
    invoice_ids = [i for s in sales for i in s["invoices"]]
    shipments = rpc.call("model.stock.shipment.out.read", shipment_ids, ["state"])
    invoices = rpc.call("model.account.invoice.read", invoice_ids, ["state"])
    return {
        "sales": len(sales),
        "shipments": len(shipments),
        "shipments_done": sum(s["state"] == "done" for s in shipments),
        "invoices": len(invoices),
        "invoices_posted": sum(i["state"] == "posted" for i in invoices),
    }
