"""The warehouse sandbox: shipments of reservations the ERP sandbox knows."""

from __future__ import annotations

import secrets
import uuid
import zlib
from typing import Any

from sandbox import checks
from sandbox.app import Service
from sandbox.faults import FaultSwitch
from sandbox.ledger import Effect, Ledger
from sandbox.protocol import ApiError, Reply
from sandbox.state import SandboxState

CARRIERS = ("DHL", "UPS", "PostNL")
# Postal codes the sandbox warehouse does not deliver to.
UNDELIVERABLE_PREFIX = "000"


def warehouse_service(state: SandboxState, token: str) -> Service:
    """The warehouse's fulfillment API over the shared state."""
    faults = FaultSwitch("warehouse")
    shipments = state.shipments
    shipments.dispatch_after = lambda: faults.current().dispatch_after_s

    def ship(payload: Any) -> Effect:
        body = checks.obj(payload, "body")
        order_id = checks.text(body, "order_id")
        reservation_id = checks.text(body, "reservation_id")
        ship_to = checks.obj(body.get("ship_to"), "ship_to")
        checks.lines(body)
        if str(ship_to.get("postal_code", "")).startswith(UNDELIVERABLE_PREFIX):
            # A sandbox rule, so tests can have an address refused for good (and corrected).
            raise ApiError(
                422, "undeliverable_address", f"no delivery to {ship_to.get('postal_code')}"
            )
        reservation = checks.owned(
            state.inventory.reservation(reservation_id), "reservation", reservation_id, order_id
        )
        if reservation.released:
            raise ApiError(409, "reservation_released", f"{reservation_id} was released")
        shipment_id = f"shp_{uuid.uuid4().hex}"
        shipments.add(shipment_id, order_id, reservation_id)
        reply = Reply.json(
            201,
            {
                "shipment_id": shipment_id,
                "order_id": order_id,
                "carrier": CARRIERS[zlib.crc32(order_id.encode()) % len(CARRIERS)],
                "tracking_number": "TRK" + secrets.token_hex(8).upper(),
            },
        )
        return Effect(
            order_id=order_id, id=shipment_id, reply=reply, detail={"ship_to": body["ship_to"]}
        )

    def cancel(shipment_id: str, payload: Any) -> Effect:
        body = checks.obj(payload, "body")
        order_id = checks.text(body, "order_id")
        shipment = checks.owned(shipments.get(shipment_id), "shipment", shipment_id, order_id)
        if shipment.cancelled:
            raise ApiError(409, "already_cancelled", f"{shipment_id} was cancelled before")
        if shipments.dispatched(shipment):
            raise ApiError(409, "already_dispatched", f"{shipment_id} has left the warehouse")
        shipment.cancelled = True
        reply = Reply.json(200, {"shipment_id": shipment_id, "status": "cancelled"})
        return Effect(
            order_id=order_id, id=f"cnl_{shipment_id}", reply=reply, compensates=shipment_id
        )

    return Service(
        name="warehouse",
        token=token,
        ledger=Ledger("warehouse", state.lock),
        faults=faults,
        writes={"/shipments": ship},
        actions={("/shipments/", "/cancel"): cancel},
    )
