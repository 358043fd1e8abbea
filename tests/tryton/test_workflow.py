"""The Tryton adapter on a real trytond: each step exactly once, whatever came before it."""

from __future__ import annotations

import contextlib
import threading
import uuid
from typing import Any

import pytest

from adapters.tryton.ports import TrytonFulfillment, TrytonInventory, TrytonInvoicing
from adapters.tryton.workflow import Done
from hub.core.errors import PermanentError, TransientError
from hub.core.ports.downstream import Line, Order
from hub.db.engine import get_engine
from hub.db.lease import StepLease
from sandbox.tryton import control
from sandbox.tryton.server import TrytonSandbox
from tests import support
from tests.tryton.conftest import LiveTryton

SHIP_TO = {"name": "Ada", "line1": "12 Analytical St", "city": "London", "postal_code": "NW1"}


def an_order(sku: str = "SKU-001", qty: int = 2, customer: str = "C-1") -> Order:
    return Order(
        id=uuid.uuid4(),
        customer={"id": customer, "name": "Ada Lovelace"},
        ship_to=SHIP_TO,
        currency="EUR",
        lines=(Line(sku=sku, qty=qty, unit_price="19.90"),),
    )


def test_each_step_run_twice_makes_one_sale_one_shipment_done_one_invoice_posted(
    tryton: LiveTryton,
) -> None:
    workflow, order = tryton.workflow(), an_order()

    first = [workflow.reserve(order), workflow.ship(order), workflow.invoice(order)]
    again = [workflow.reserve(order), workflow.ship(order), workflow.invoice(order)]

    assert [d.number for d in again] == [d.number for d in first]
    assert first[2].result["total"] == "39.80"
    assert control.counts(tryton.admin(), str(order.id)) == {
        "sales": 1,
        "shipments": 1,
        "shipments_done": 1,
        "invoices": 1,
        "invoices_posted": 1,
    }


def test_out_of_stock_is_permanent_and_the_replay_after_a_restock_succeeds(
    tryton: LiveTryton,
) -> None:
    workflow, order = tryton.workflow(), an_order(sku="SKU-SCARCE", qty=3)

    with pytest.raises(PermanentError) as failed:
        workflow.reserve(order)
    control.restock(tryton.admin(), {"SKU-SCARCE": 3})
    done = workflow.reserve(order)

    assert failed.value.code == "out_of_stock"
    assert "SKU-SCARCE" in failed.value.message
    assert done.number == failed.value.message.split("for sale ")[1].split(":")[0]
    assert control.counts(tryton.admin(), str(order.id))["sales"] == 1


def test_a_confirmed_sale_left_without_its_shipment_is_processed(tryton: LiveTryton) -> None:
    """Tryton SIGKILLed mid-confirm can commit the sale confirmed with its queued process never
    run: no shipment. The next attempt runs the process itself."""
    workflow, order = tryton.workflow(), an_order()
    rpc = tryton.rpc()
    sale = workflow._create_sale(order)
    rpc.call("model.sale.sale.quote", [sale["id"]])
    # What the killed server left behind: the sale confirmed, its shipment never made.
    connection = TrytonSandbox().connect(tryton.database)
    with contextlib.closing(connection), connection, connection.cursor() as cursor:
        cursor.execute(
            "UPDATE sale_sale SET state = 'confirmed', sale_date = CURRENT_DATE WHERE id = %s",
            (sale["id"],),
        )

    done = workflow.reserve(order)

    assert done.number == rpc.call("model.sale.sale.read", [sale["id"]], ["number"])[0]["number"]
    assert control.counts(tryton.admin(), str(order.id))["shipments"] == 1


def test_a_shipment_done_without_its_invoice_has_the_sale_processed(tryton: LiveTryton) -> None:
    """Tryton killed after a shipment's done and before the sale's queued process leaves no
    invoice: the invoice step runs the process itself, then posts the one invoice."""
    workflow, order = tryton.workflow(), an_order()
    workflow.reserve(order)
    workflow.ship(order)
    # What the killed server left behind: the shipment done, the sale's invoice never drafted.
    # (Deleted in SQL: Tryton's own delete of an invoice queues the sale's process again.)
    admin = tryton.admin()
    (sale,) = admin.call(
        "model.sale.sale.search_read", [["reference", "=", str(order.id)]], 0, 1, None, ["invoices"]
    )
    connection = TrytonSandbox().connect(tryton.database)
    with contextlib.closing(connection), connection, connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM account_invoice_line WHERE invoice = ANY(%s)", (sale["invoices"],)
        )
        cursor.execute("DELETE FROM account_invoice WHERE id = ANY(%s)", (sale["invoices"],))
    assert control.counts(admin, str(order.id))["invoices"] == 0

    done = workflow.invoice(order)

    assert done.result["total"] == "39.80"
    assert control.counts(admin, str(order.id))["invoices_posted"] == 1


def test_a_new_customer_created_by_a_concurrent_order_is_taken_not_refused(
    tryton: LiveTryton,
) -> None:
    """Two orders of one new customer reserved at once: the second create of the party is
    refused by Tryton (a party's code is unique); the loser finds the winner's party."""
    customer = f"C-{uuid.uuid4().hex[:8]}"
    first, second = an_order(customer=customer), an_order(customer=customer)
    tryton.workflow().reserve(first)
    workflow = tryton.workflow()
    real_call = workflow.rpc.call
    searches = 0

    def stale_search(method: str, *params: Any) -> Any:
        # The second order's search ran before the first order's create committed.
        nonlocal searches
        if method == "model.party.party.search" and searches == 0:
            searches += 1
            return []
        return real_call(method, *params)

    workflow.rpc.call = stale_search  # type: ignore[method-assign]
    workflow.reserve(second)

    parties = tryton.admin().call("model.party.party.search", [["code", "=", customer]], 0, 9, None)
    assert len(parties) == 1
    sales = [workflow.find_sale(str(o.id)) for o in (first, second)]
    assert len({s["reference"] for s in sales if s}) == 2


def test_an_unknown_sku_is_permanent_and_names_it(tryton: LiveTryton) -> None:
    with pytest.raises(PermanentError) as failed:
        tryton.workflow().reserve(an_order(sku="NO-SUCH-SKU"))
    assert failed.value.code == "unknown_sku"
    assert "NO-SUCH-SKU" in failed.value.message


def test_a_button_in_the_wrong_state_is_a_permanent_error_with_trytons_message(
    tryton: LiveTryton,
) -> None:
    workflow, order = tryton.workflow(), an_order()
    workflow.reserve(order)
    sale = workflow.find_sale(str(order.id))
    assert sale is not None

    with pytest.raises(PermanentError) as failed:
        tryton.rpc().call("model.sale.sale.delete", [sale["id"]])

    assert failed.value.code == "tryton_user_error"
    assert "model.sale.sale.delete" in failed.value.message


def test_an_expired_session_logs_in_again_within_the_call(tryton: LiveTryton) -> None:
    rpc = tryton.rpc()
    rpc.call("model.sale.sale.search_count", [])
    rpc.expire_session()

    count = rpc.call("model.sale.sale.search_count", [])

    assert isinstance(count, int)
    assert rpc.logins == 2


def test_tryton_unreachable_is_transient(tryton: LiveTryton) -> None:
    rpc = tryton.rpc()
    rpc._base = "http://127.0.0.1:1/" + tryton.database + "/"
    with pytest.raises(TransientError) as failed:
        rpc.call("model.sale.sale.search_count", [])
    assert "connection failed" in failed.value.message


def run_together(*calls: Any) -> list[Done | BaseException]:
    results: list[Done | BaseException] = []
    barrier = threading.Barrier(len(calls))

    def run(call: Any) -> None:
        barrier.wait()
        try:
            results.append(call())
        except BaseException as exc:
            results.append(exc)

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    return results


def test_two_deliveries_at_once_under_the_lease_make_one_sale(tryton: LiveTryton) -> None:
    support.require_services()
    lease = StepLease(get_engine(), system="tryton", wait_s=120)
    order = an_order()
    key = f"{order.id}:inventory"

    def deliver() -> Done:
        with lease(key):
            return tryton.workflow().reserve(order)

    results = run_together(deliver, deliver)

    assert all(isinstance(r, Done) for r in results), results
    assert len({r.number for r in results if isinstance(r, Done)}) == 1
    assert control.counts(tryton.admin(), str(order.id))["sales"] == 1


def test_without_the_lease_the_unique_reference_still_makes_one_sale(
    tryton: LiveTryton,
) -> None:
    order = an_order()
    creates = run_together(
        lambda: tryton.workflow()._create_sale(order),
        lambda: tryton.workflow()._create_sale(order),
    )
    assert all(isinstance(r, dict) for r in creates), creates
    assert control.counts(tryton.admin(), str(order.id))["sales"] == 1


def test_the_ports_chosen_by_the_adapter_setting_run_the_chain(
    tryton: LiveTryton,
) -> None:
    support.require_services()
    lease = StepLease(get_engine(), system="tryton", wait_s=60)
    workflow = tryton.workflow()
    inventory = TrytonInventory(workflow, lease)
    order = an_order()
    key = f"{order.id}:"

    reservation = inventory.reserve(order, key + "inventory")
    shipment = TrytonFulfillment(workflow, lease).ship(order, reservation, key + "fulfillment")
    invoicing = TrytonInvoicing(workflow, lease)
    invoice = invoicing.invoice(order, shipment, key + "invoice")

    assert invoice.total == "39.80"
    assert control.counts(tryton.admin(), str(order.id))["invoices_posted"] == 1
    inventory.check()


def test_release_cancels_an_assigned_shipment_and_refuses_a_done_one(tryton: LiveTryton) -> None:
    workflow = tryton.workflow()
    kept, shipped = an_order(), an_order()
    workflow.reserve(kept)
    workflow.reserve(shipped)
    workflow.ship(shipped)

    workflow.release(kept.id)
    workflow.release(kept.id)
    with pytest.raises(PermanentError) as refused:
        workflow.release(shipped.id)

    assert refused.value.code == "already_consumed"


def on_hand(tryton: LiveTryton, sku: str) -> float:
    """The sku's quantity on hand in the warehouse's storage, as Tryton computes it."""
    admin = tryton.admin()
    (storage,) = admin.call("model.stock.location.search", [["code", "=", "STO"]], 0, 1, None)
    (product,) = admin.call(
        "model.product.product.search_read",
        [["code", "=", sku]],
        0,
        1,
        None,
        ["quantity"],
        context={"locations": [storage]},
    )
    return float(product["quantity"])


def test_the_compensations_credit_the_invoice_and_return_the_shipment_each_once(
    tryton: LiveTryton,
) -> None:
    """Undoing a whole chain through the ports, each compensation delivered twice: one credit
    note posted (Tryton's credit wizard, over RPC), one customer return done with the stock
    back on hand, and the release then finds the return."""
    support.require_services()
    lease = StepLease(get_engine(), system="tryton", wait_s=60)
    workflow = tryton.workflow()
    inventory = TrytonInventory(workflow, lease)
    fulfillment = TrytonFulfillment(workflow, lease)
    invoicing = TrytonInvoicing(workflow, lease)
    order = an_order(sku="SKU-007", qty=3)
    key = f"{order.id}:"
    before = on_hand(tryton, "SKU-007")
    reservation = inventory.reserve(order, key + "inventory")
    shipment = fulfillment.ship(order, reservation, key + "fulfillment")
    invoice = invoicing.invoice(order, shipment, key + "invoice")
    assert on_hand(tryton, "SKU-007") == before - 3

    notes = [invoicing.credit(order.id, invoice, "cancelled", key + "credit") for _ in "12"]
    for _ in "12":
        fulfillment.cancel(order.id, shipment, key + "cancel")
        inventory.release(order.id, reservation, key + "release")

    assert notes[0] == notes[1] and notes[0].total == invoice.total
    connection = TrytonSandbox().connect(tryton.database)
    with contextlib.closing(connection), connection, connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT n.number, n.state, n.total_amount_cache, i.number, i.state
            FROM account_invoice n
            JOIN account_invoice_line nl ON nl.invoice = n.id
            JOIN account_invoice_line il ON nl.origin = 'account.invoice.line,' || il.id
            JOIN account_invoice i ON i.id = il.invoice
            WHERE i.number = %s
            """,
            (invoice.id,),
        )
        credited = cursor.fetchall()
        cursor.execute(
            "SELECT state FROM stock_shipment_out_return WHERE reference = %s", (str(order.id),)
        )
        returns = cursor.fetchall()
    # The note posted and reconciled with the invoice (refund): Tryton says paid and cancelled.
    (note,) = credited
    assert note[0] == notes[0].id and note[1] == "paid", note
    assert note[3:] == (invoice.id, "cancelled"), note
    assert returns == [("done",)]
    assert on_hand(tryton, "SKU-007") == before


def test_a_credit_of_an_invoice_not_posted_is_refused(tryton: LiveTryton) -> None:
    workflow, order = tryton.workflow(), an_order()
    workflow.reserve(order)
    workflow.ship(order)  # Tryton drafts the invoice; the invoice step has not posted it

    with pytest.raises(PermanentError) as refused:
        workflow.credit(order.id)

    assert refused.value.code == "invoice_not_posted"
    assert control.counts(tryton.admin(), str(order.id))["invoices"] == 1


def test_a_button_an_earlier_attempt_pressed_first_is_this_attempts_work_done(
    tryton: LiveTryton,
) -> None:
    """A worker SIGKILLed with its pick in flight frees its lease, but Tryton runs the pick to
    the end: the redelivery read the shipment assigned, and its own pick is refused. It reads
    the state again, finds it moved on, and goes on (it failed the e2e as a permanent
    'You can not call "pick"')."""
    workflow, order = tryton.workflow(), an_order()
    workflow.reserve(order)
    admin = tryton.admin()
    real_call = workflow.rpc.call
    raced: list[str] = []

    def earlier_attempt_first(method: str, *params: Any, **kwargs: Any) -> Any:
        if method == "model.stock.shipment.out.pick" and not raced:
            raced.append(method)
            admin.call(method, *params)  # the cut-off attempt's call, ending in Tryton first
        return real_call(method, *params, **kwargs)

    workflow.rpc.call = earlier_attempt_first  # type: ignore[method-assign]
    done = workflow.ship(order)

    assert raced == ["model.stock.shipment.out.pick"]
    assert control.counts(admin, str(order.id))["shipments_done"] == 1
    assert done.number
