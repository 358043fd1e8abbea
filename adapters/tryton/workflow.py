"""An order's steps as Tryton's own workflow, each one safe to run again.

Tryton honours no idempotency key, so every step first finds what an earlier attempt did (the
sale by its reference, the hub's order id), reads its state, and moves it only as far as it has
not gone yet: a state at or past the target is success. A button pressed in the wrong state is an
error in Tryton, so after any error the caller's next attempt reads the state again. What keeps
two deliveries of one step from calling Tryton at the same moment is the caller's lease (the
hub's, ``hub.db.lease``) and, for the sale's creation, the ``hub_sale_reference`` module's
unique reference where it is installed.

- inventory: a sale (party by customer id, products by code = sku), quoted, confirmed, its
  customer shipment's stock assigned (``out_of_stock`` when Tryton cannot assign it);
- fulfillment: the shipment picked, packed and done;
- invoice: the sale's invoice posted.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from adapters.tryton.rpc import SYSTEM, TrytonRpc
from hub.core.errors import DownstreamError, PermanentError
from hub.core.ports.downstream import Order

SALE_FIELDS = ["state", "number", "shipments", "invoices", "reference"]
# A sale's states in workflow order; "cancelled" is off the path.
SALE_ORDER = ("draft", "quotation", "confirmed", "processing", "done")
SHIPMENT_ORDER = ("draft", "waiting", "assigned", "picked", "packed", "shipped", "done")
INVOICE_DONE = ("posted", "paid")


@dataclass(frozen=True)
class Done:
    """The number Tryton gave the record (the order's downstream id) and what else is worth
    keeping."""

    number: str
    result: dict[str, Any]


def out_of_stock(message: str) -> PermanentError:
    return PermanentError(system=SYSTEM, message=message, code="out_of_stock", status=409)


class TrytonWorkflow:
    """The three steps and their compensations on one Tryton database."""

    def __init__(self, rpc: TrytonRpc) -> None:
        self.rpc = rpc

    # ---- inventory ---------------------------------------------------------------------------

    def reserve(self, order: Order) -> Done:
        """The order's sale confirmed and its shipment's stock assigned."""
        sale = self.find_sale(str(order.id)) or self._create_sale(order)
        sale = self._advance_sale(sale)
        shipment = self._shipment(sale)
        if shipment["state"] == "waiting":
            self.rpc.call("model.stock.shipment.out.assign_try", [shipment["id"]])
            shipment = self._read_shipment(shipment["id"])
        if shipment["state"] in ("draft", "waiting"):
            raise out_of_stock(
                f"Tryton could not assign the stock of shipment {shipment['number']} for sale "
                f"{sale['number']}: not enough on hand (skus {', '.join(self._skus(order))})"
            )
        if shipment["state"] == "cancelled":
            raise PermanentError(
                system=SYSTEM,
                message=f"shipment {shipment['number']} of sale {sale['number']} is cancelled",
                code="cancelled",
            )
        return Done(
            str(sale["number"]),
            {"sale": sale["number"], "sale_id": sale["id"], "shipment": shipment["number"]},
        )

    def find_sale(self, reference: str) -> dict[str, Any] | None:
        ids = self.rpc.call("model.sale.sale.search", [["reference", "=", reference]], 0, 2, None)
        if not ids:
            return None
        if len(ids) > 1:
            raise PermanentError(
                system=SYSTEM,
                message=f"{len(ids)} sales in Tryton have the reference {reference}",
                code="duplicate_sale",
            )
        return self._read_sale(ids[0])

    def _create_sale(self, order: Order) -> dict[str, Any]:
        party, address = self._party(order)
        products = self._products(order)
        currency = self._currency(order.currency)
        lines = []
        for line in order.lines:
            product = products[line.sku]
            lines.append(
                {
                    "type": "line",
                    "product": product["id"],
                    "quantity": float(line.qty),
                    "unit": product["sale_uom"],
                    "unit_price": Decimal(line.unit_price),
                    "description": line.sku,
                }
            )
        values = {
            "party": party,
            "invoice_address": address,
            "shipment_address": address,
            "currency": currency,
            "reference": str(order.id),
            "description": f"hub order {order.id!s}",
            "invoice_method": "fulfillment",
            "shipment_method": "order",
            "lines": [["create", lines]],
        }
        try:
            (sale_id,) = self.rpc.call("model.sale.sale.create", [values])
        except PermanentError:
            # With hub_sale_reference, a concurrent creator made it first: take that one.
            found = self.find_sale(str(order.id))
            if found is None:
                raise
            return found
        return self._read_sale(sale_id)

    def _advance_sale(self, sale: dict[str, Any]) -> dict[str, Any]:
        """Quote and confirm as far as not done yet; process a confirmed sale left without its
        shipment (Tryton killed between confirm and its queued process)."""
        if sale["state"] == "cancelled":
            raise PermanentError(
                system=SYSTEM, message=f"sale {sale['number']} is cancelled", code="cancelled"
            )
        if sale["state"] == "draft":
            sale = self._press("sale.sale", "quote", sale, self._read_sale)
        if sale["state"] == "quotation":
            sale = self._press("sale.sale", "confirm", sale, self._read_sale)
        if sale["state"] == "confirmed" and not sale["shipments"]:
            self.rpc.call("model.sale.sale.process", [sale["id"]])
            sale = self._read_sale(sale["id"])
        return sale

    def _shipment(self, sale: dict[str, Any]) -> dict[str, Any]:
        shipments = [self._read_shipment(i) for i in sale["shipments"]]
        live = [s for s in shipments if s["state"] != "cancelled"] or shipments
        if len(live) != 1:
            raise PermanentError(
                system=SYSTEM,
                message=f"sale {sale['number']} has {len(live)} shipments, expected one "
                f"(state {sale['state']})",
                code="no_shipment",
            )
        return live[0]

    def _party(self, order: Order) -> tuple[int, int]:
        """The customer's party by code (the hub's customer id), created on first sight."""
        code = str(order.customer["id"])
        found = self.rpc.call("model.party.party.search", [["code", "=", code]], 0, 1, None)
        if found:
            (party,) = self.rpc.call("model.party.party.read", found, ["addresses"])
            if party["addresses"]:
                return found[0], party["addresses"][0]
        ship_to = order.ship_to
        address = {
            "party_name": str(ship_to.get("name", "")),
            "street": str(ship_to.get("line1", "")),
            "city": str(ship_to.get("city", "")),
            "postal_code": str(ship_to.get("postal_code", "")),
        }
        if found:
            (address_id,) = self.rpc.call(
                "model.party.address.create", [{**address, "party": found[0]}]
            )
            return found[0], address_id
        try:
            (party_id,) = self.rpc.call(
                "model.party.party.create",
                [
                    {
                        "name": str(order.customer.get("name") or code),
                        "code": code,
                        "addresses": [["create", [address]]],
                    }
                ],
            )
        except PermanentError:
            # A party's code is unique in Tryton: another order of the same new customer
            # created it first (two orders' inventory steps run at once). Take that one.
            if not self.rpc.call("model.party.party.search", [["code", "=", code]], 0, 1, None):
                raise
            return self._party(order)
        (party,) = self.rpc.call("model.party.party.read", [party_id], ["addresses"])
        return party_id, party["addresses"][0]

    def _products(self, order: Order) -> dict[str, dict[str, Any]]:
        skus = self._skus(order)
        records = self.rpc.call(
            "model.product.product.search_read",
            [["code", "in", skus]],
            0,
            None,
            None,
            ["code", "sale_uom", "salable"],
        )
        by_code = {str(r["code"]): r for r in records}
        missing = [sku for sku in skus if sku not in by_code]
        if missing:
            raise PermanentError(
                system=SYSTEM,
                message=f"no product in Tryton has the code {', '.join(missing)}",
                code="unknown_sku",
            )
        return by_code

    def _currency(self, code: str) -> int:
        found = self.rpc.call("model.currency.currency.search", [["code", "=", code]], 0, 1, None)
        if not found:
            raise PermanentError(
                system=SYSTEM, message=f"Tryton has no currency {code}", code="unknown_currency"
            )
        return int(found[0])

    @staticmethod
    def _skus(order: Order) -> list[str]:
        return sorted({line.sku for line in order.lines})

    # ---- fulfillment -------------------------------------------------------------------------

    def ship(self, order: Order) -> Done:
        """The order's shipment picked, packed and done."""
        sale = self._sale_of(str(order.id), step="fulfillment")
        shipment = self._shipment(sale)
        for button, before in (("pick", "assigned"), ("pack", "picked"), ("do", "packed")):
            if shipment["state"] == before:
                shipment = self._press("stock.shipment.out", button, shipment, self._read_shipment)
        if shipment["state"] != "done":
            raise PermanentError(
                system=SYSTEM,
                message=f"shipment {shipment['number']} is {shipment['state']}, not done",
                code="shipment_not_done",
            )
        return Done(
            str(shipment["number"]), {"shipment": shipment["number"], "sale": sale["number"]}
        )

    # ---- invoice -----------------------------------------------------------------------------

    def invoice(self, order: Order) -> Done:
        """The sale's invoice posted (Tryton drafts it when the shipment is done)."""
        sale = self._sale_of(str(order.id), step="invoice")
        if not self._live_invoices(sale):
            # Tryton drafts the invoice in the sale's process, queued when the shipment is
            # done: a Tryton killed in between leaves the shipment done and no invoice.
            self.rpc.call("model.sale.sale.process", [sale["id"]])
            sale = self._read_sale(sale["id"])
        invoice = self._invoice(sale)
        if invoice["state"] in ("draft", "validated"):
            invoice = self._press("account.invoice", "post", invoice, self._read_invoice)
        if invoice["state"] not in INVOICE_DONE:
            raise PermanentError(
                system=SYSTEM,
                message=f"invoice of sale {sale['number']} is {invoice['state']}, not posted",
                code="invoice_not_posted",
            )
        return Done(
            str(invoice["number"]),
            {
                "invoice": invoice["number"],
                "total": str(invoice["total_amount"]),
                "sale": sale["number"],
            },
        )

    def _live_invoices(self, sale: dict[str, Any]) -> list[dict[str, Any]]:
        invoices = [self._read_invoice(i) for i in sale["invoices"]]
        return [i for i in invoices if i["state"] != "cancelled" and i["type"] == "out"]

    def _invoice(self, sale: dict[str, Any]) -> dict[str, Any]:
        live = self._live_invoices(sale)
        if len(live) != 1:
            raise PermanentError(
                system=SYSTEM,
                message=f"sale {sale['number']} has {len(live)} invoices, expected one",
                code="no_invoice",
            )
        return live[0]

    # ---- compensations (Tryton's own undo of each step) ----------------------------------------

    def release(self, order_id: uuid.UUID) -> Done:
        """Undo inventory: the shipment cancelled, the sale's stock free again. A shipment done
        has left the stock: released only once its return is done (``unship``)."""
        sale = self._sale_of(str(order_id), step="release")
        shipment = self._shipment(sale)
        if shipment["state"] in ("picked", "packed", "shipped", "done"):
            returned = self._find_return(str(order_id))
            if returned is not None and returned["state"] == "done":
                return Done(str(sale["number"]), {"sale": sale["number"], "status": "returned"})
            raise PermanentError(
                system=SYSTEM,
                message=f"shipment {shipment['number']} is {shipment['state']}: "
                "it left the stock, a return is needed",
                code="already_consumed",
            )
        if shipment["state"] != "cancelled":
            self.rpc.call("model.stock.shipment.out.cancel", [shipment["id"]])
        return Done(str(sale["number"]), {"sale": sale["number"], "status": "released"})

    def unship(self, order_id: uuid.UUID) -> Done:
        """Undo fulfillment: a shipment not done yet is cancelled; one done comes back by a
        customer return (``stock.shipment.out.return``, its reference the hub's order id, found
        before one is made), received and done, so its stock is on hand again. The return is
        not on the sale, so Tryton invoices nothing for it (the invoice's undo is the credit
        note)."""
        reference = str(order_id)
        sale = self._sale_of(reference, step="cancel shipment")
        shipment = self._shipment(sale)
        if shipment["state"] not in ("shipped", "done"):
            if shipment["state"] != "cancelled":
                self.rpc.call("model.stock.shipment.out.cancel", [shipment["id"]])
            return Done(
                str(shipment["number"]), {"shipment": shipment["number"], "status": "cancelled"}
            )
        returned = self._find_return(reference) or self._create_return(reference, shipment["id"])
        for button, before in (("receive", "draft"), ("do", "received")):
            if returned["state"] == before:
                self.rpc.call(f"model.stock.shipment.out.return.{button}", [returned["id"]])
                returned = self._find_return(reference) or returned
        if returned["state"] != "done":
            raise PermanentError(
                system=SYSTEM,
                message=f"return {returned['number']} of shipment {shipment['number']} is "
                f"{returned['state']}, not done",
                code="return_not_done",
            )
        return Done(
            str(returned["number"]), {"return": returned["number"], "shipment": shipment["number"]}
        )

    def _find_return(self, reference: str) -> dict[str, Any] | None:
        found = self.rpc.call(
            "model.stock.shipment.out.return.search_read",
            [["reference", "=", reference], ["state", "!=", "cancelled"]],
            0,
            2,
            None,
            ["state", "number"],
        )
        if len(found) > 1:
            raise PermanentError(
                system=SYSTEM,
                message=f"{len(found)} returns in Tryton have the reference {reference}",
                code="duplicate_return",
            )
        return dict(found[0]) if found else None

    def _create_return(self, reference: str, shipment_id: int) -> dict[str, Any]:
        """A return of every move the shipment delivered, from the customer's location back
        into the warehouse."""
        (shipment,) = self.rpc.call(
            "model.stock.shipment.out.read",
            [shipment_id],
            ["customer", "warehouse", "outgoing_moves", "number"],
        )
        moves = self.rpc.call(
            "model.stock.move.read",
            shipment["outgoing_moves"],
            ["product", "quantity", "unit", "to_location", "unit_price", "currency", "state"],
        )
        (warehouse,) = self.rpc.call(
            "model.stock.location.read",
            [shipment["warehouse"]],
            ["input_location", "storage_location"],
        )
        lines = [
            {
                "product": move["product"],
                "quantity": move["quantity"],
                "unit": move["unit"],
                "from_location": move["to_location"],
                "to_location": warehouse["input_location"],
                "unit_price": move["unit_price"],
                "currency": move["currency"],
                # The move it brings back (Tryton warns of a customer move without an origin;
                # a sale line as origin would make the sale invoice the return).
                "origin": f"stock.move,{move['id']}",
            }
            for move in moves
            if move["state"] == "done"
        ]
        (return_id,) = self.rpc.call(
            "model.stock.shipment.out.return.create",
            [
                {
                    "customer": shipment["customer"],
                    "warehouse": shipment["warehouse"],
                    # create runs no on_change: the warehouse's locations sent, as Tryton's
                    # client would fill them in.
                    "warehouse_input": warehouse["input_location"],
                    "warehouse_storage": warehouse["storage_location"],
                    "reference": reference,
                    "incoming_moves": [["create", lines]],
                }
            ],
        )
        found = self._find_return(reference)
        assert found is not None and found["id"] == return_id
        return found

    def credit(self, order_id: uuid.UUID) -> Done:
        """Undo invoice: a credit note of the posted invoice, posted. Found first if made before
        (its lines' origin are the invoice's lines); made by Tryton's own wizard
        (``account.invoice.credit``, over RPC: the model's ``credit`` is not exposed), with
        refund where Tryton allows it (the invoice unpaid: the note is posted and reconciled
        with it, and Tryton marks the invoice cancelled)."""
        sale = self._sale_of(str(order_id), step="credit")
        invoice = self._credited_invoice(sale)
        notes = self._credit_notes(invoice)
        if not notes:
            if invoice["state"] not in INVOICE_DONE:
                raise PermanentError(
                    system=SYSTEM,
                    message=f"invoice {invoice['number']} of sale {sale['number']} is "
                    f"{invoice['state']}: no posted invoice to credit",
                    code="invoice_not_posted",
                )
            self._wizard("account.invoice.credit", "account.invoice", [invoice["id"]], "credit")
            notes = self._credit_notes(invoice)
        if len(notes) != 1:
            raise PermanentError(
                system=SYSTEM,
                message=f"invoice {invoice['number']} has {len(notes)} credit notes, expected one",
                code="credit_notes",
            )
        (note,) = notes
        if note["state"] in ("draft", "validated"):
            # Credited without refund (a paid invoice): Tryton leaves the note a draft.
            self.rpc.call("model.account.invoice.post", [note["id"]])
            note = self._read_invoice(note["id"])
        return Done(
            str(note["number"]), {"credit_note": note["number"], "invoice": invoice["number"]}
        )

    def _credited_invoice(self, sale: dict[str, Any]) -> dict[str, Any]:
        """The sale's customer invoice: posted, cancelled by a credit with refund (it has a
        number), or not posted yet (refused by the caller). A draft cancelled is no invoice."""
        invoices = [self._read_invoice(i) for i in sale["invoices"]]
        out = [
            i for i in invoices if i["type"] == "out" and (i["number"] or i["state"] != "cancelled")
        ]
        if len(out) != 1:
            raise PermanentError(
                system=SYSTEM,
                message=f"sale {sale['number']} has {len(out)} invoices, expected one",
                code="no_invoice",
            )
        return out[0]

    def _credit_notes(self, invoice: dict[str, Any]) -> list[dict[str, Any]]:
        found = self.rpc.call(
            "model.account.invoice.search_read",
            [["lines.origin", "in", [f"account.invoice.line,{i}" for i in invoice["lines"]]]],
            0,
            None,
            None,
            ["state", "number", "type", "total_amount", "lines"],
        )
        return [dict(n) for n in found if n["state"] != "cancelled"]

    def _wizard(self, name: str, model: str, ids: list[int], button: str) -> None:
        """Run Tryton's wizard ``name`` on records ``ids``: its start view's defaults (Tryton's
        own choices), then ``button``; the wizard's session deleted after."""
        context = {"active_model": model, "active_id": ids[0], "active_ids": ids}
        session, start, _end = self.rpc.call(f"wizard.{name}.create")
        try:
            view = self.rpc.call(f"wizard.{name}.execute", session, {}, start, context=context)
            defaults = dict(view.get("view", {}).get("defaults") or {})
            self.rpc.call(
                f"wizard.{name}.execute", session, {start: defaults}, button, context=context
            )
        finally:
            with contextlib.suppress(DownstreamError):
                self.rpc.call(f"wizard.{name}.delete", session, context=context)

    def _press(
        self,
        model: str,
        button: str,
        record: dict[str, Any],
        read: Callable[[int], dict[str, Any]],
    ) -> dict[str, Any]:
        """Tryton's ``button`` on ``record``, then the record read again. Refused because the
        record is no longer in the state read before: an earlier attempt's call moved it first
        (its worker was killed with the call in flight in Tryton, which runs it to the end
        while the killed worker's lease is gone), and that is this call's work done."""
        try:
            self.rpc.call(f"model.{model}.{button}", [record["id"]])
        except PermanentError:
            now = read(record["id"])
            if now["state"] == record["state"]:
                raise
            return now
        return read(record["id"])

    # ---- reads -------------------------------------------------------------------------------

    def _sale_of(self, order_id: str, *, step: str) -> dict[str, Any]:
        sale = self.find_sale(order_id)
        if sale is None:
            raise PermanentError(
                system=SYSTEM,
                message=f"{step}: Tryton has no sale with the reference {order_id}",
                code="unknown_sale",
            )
        return sale

    def _read_sale(self, sale_id: int) -> dict[str, Any]:
        (sale,) = self.rpc.call("model.sale.sale.read", [sale_id], SALE_FIELDS)
        return dict(sale)

    def _read_shipment(self, shipment_id: int) -> dict[str, Any]:
        (shipment,) = self.rpc.call(
            "model.stock.shipment.out.read", [shipment_id], ["state", "number"]
        )
        return dict(shipment)

    def _read_invoice(self, invoice_id: int) -> dict[str, Any]:
        (invoice,) = self.rpc.call(
            "model.account.invoice.read",
            [invoice_id],
            ["state", "number", "type", "total_amount", "lines"],
        )
        return dict(invoice)


def is_out_of_stock(error: DownstreamError) -> bool:
    return error.code == "out_of_stock"
