"""The ERP sandbox: reservations against real stock, stock levels, and POST /_stock."""

from __future__ import annotations

from typing import Any

from sandbox import checks
from sandbox.app import Service
from sandbox.faults import FaultSwitch
from sandbox.ledger import Effect, Ledger
from sandbox.protocol import ApiError, Reply
from sandbox.state import SandboxState


def erp_service(state: SandboxState, token: str) -> Service:
    """The ERP's inventory API over the shared state."""
    inventory = state.inventory

    def reserve(payload: Any) -> Effect:
        body = checks.obj(payload, "body")
        order_id = checks.text(body, "order_id")
        lines = checks.lines(body)
        reservation = inventory.reserve(order_id, lines)
        reply = Reply.json(
            201,
            {"reservation_id": reservation.reservation_id, "order_id": order_id, "lines": lines},
        )
        return Effect(order_id=order_id, id=reservation.reservation_id, reply=reply)

    def release(reservation_id: str, payload: Any) -> Effect:
        body = checks.obj(payload, "body")
        order_id = checks.text(body, "order_id")
        checks.owned(inventory.reservation(reservation_id), "reservation", reservation_id, order_id)
        if state.shipments.consumed(reservation_id):
            raise ApiError(409, "already_consumed", f"a shipment has left with {reservation_id}")
        inventory.release(reservation_id)
        reply = Reply.json(200, {"reservation_id": reservation_id, "status": "released"})
        return Effect(
            order_id=order_id,
            id=f"rel_{reservation_id}",
            reply=reply,
            compensates=reservation_id,
        )

    def level(sku: str) -> Reply:
        found = inventory.level(sku)
        if found is None:
            raise ApiError(404, "unknown_sku", f"no sku {sku}")
        return Reply.json(200, found)

    def set_stock(payload: Any) -> Reply:
        levels = checks.obj(payload, "stock")
        for sku, qty in levels.items():
            if isinstance(qty, bool) or not isinstance(qty, int) or qty < 0:
                raise checks.invalid(f"stock of {sku} must be an integer >= 0")
        inventory.set_on_hand(levels)
        return Reply.json(200, {"stock": [inventory.level(sku) for sku in levels]})

    return Service(
        name="erp",
        token=token,
        ledger=Ledger("erp", state.lock),
        faults=FaultSwitch("erp"),
        writes={"/inventory/reservations": reserve},
        actions={("/inventory/reservations/", "/release"): release},
        reads={"/inventory/": level},
        admin_posts={"/_stock": set_stock},
    )
