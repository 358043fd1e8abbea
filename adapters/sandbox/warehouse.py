"""The warehouse sandbox: shipments of reservations the ERP sandbox knows."""

from __future__ import annotations

import secrets
import uuid
import zlib
from typing import Any

from adapters.sandbox import checks
from adapters.sandbox.app import Service
from adapters.sandbox.faults import FaultSwitch
from adapters.sandbox.ledger import Effect, Ledger
from adapters.sandbox.protocol import ApiError, Reply
from adapters.sandbox.state import SandboxState

CARRIERS = ("DHL", "UPS", "PostNL")


def warehouse_service(state: SandboxState, token: str) -> Service:
    """The warehouse's fulfillment API over the shared state."""

    def ship(payload: Any) -> Effect:
        body = checks.obj(payload, "body")
        order_id = checks.text(body, "order_id")
        reservation_id = checks.text(body, "reservation_id")
        checks.obj(body.get("ship_to"), "ship_to")
        checks.lines(body)
        reservation = state.inventory.reservation(reservation_id)
        if reservation is None:
            raise ApiError(404, "unknown_reservation", f"no reservation {reservation_id}")
        if reservation.order_id != order_id:
            raise checks.invalid(f"reservation {reservation_id} belongs to another order")
        shipment_id = f"shp_{uuid.uuid4().hex}"
        reply = Reply.json(
            201,
            {
                "shipment_id": shipment_id,
                "order_id": order_id,
                "carrier": CARRIERS[zlib.crc32(order_id.encode()) % len(CARRIERS)],
                "tracking_number": "TRK" + secrets.token_hex(8).upper(),
            },
        )
        return Effect(order_id=order_id, id=shipment_id, reply=reply)

    return Service(
        name="warehouse",
        token=token,
        ledger=Ledger("warehouse", state.lock),
        faults=FaultSwitch("warehouse"),
        writes={"/shipments": ship},
    )
