"""The point-to-point design the hub replaces: an intake that calls the ERP before answering.

``python -m bench.baseline_api`` serves ``POST /orders`` on ``--port``: it validates the order
with the hub's own schema, reserves stock in the ERP with the hub's own adapter (same
timeouts), and answers 201 only once the ERP has answered; an ERP error becomes a 502. It does
no authentication and stores nothing, so it is, if anything, flattered by the comparison.

``python -m bench.baseline_api --bare-intake`` serves the baseline of the intake capacity figure
instead: ``POST /orders`` parses the body with the hub's own ``OrderIn`` model and answers 202,
nothing else, served like ``hub api`` (uvicorn, ``HUB_API_PROCESSES`` processes, same options).
"""

from __future__ import annotations

import argparse
import uuid

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from hub import bootstrap
from hub.core.errors import DownstreamError
from hub.core.ports.downstream import Inventory, Line, Order
from hub.core.schemas import OrderIn
from hub.settings import Settings, get_settings


def create_baseline(settings: Settings) -> FastAPI:
    erp: Inventory = bootstrap.adapter(settings, "erp")
    api = FastAPI(title="synchronous baseline")

    def reserve(order: OrderIn) -> JSONResponse:
        try:
            reservation = erp.reserve(
                Order(
                    # The same id for the same external id, as the hub's order id would be.
                    id=uuid.uuid5(uuid.NAMESPACE_URL, order.external_id),
                    customer=order.customer.model_dump(),
                    ship_to=order.ship_to.model_dump(),
                    currency=order.currency,
                    lines=tuple(Line(line.sku, line.qty, line.unit_price) for line in order.lines),
                ),
                f"{order.external_id}:inventory",
            )
        except DownstreamError as exc:
            return JSONResponse({"error": "erp_failed", "detail": str(exc)}, status_code=502)
        return JSONResponse(
            {"order_id": order.external_id, "reservation_id": reservation.id},
            status_code=201,
        )

    @api.post("/orders")
    async def create_order(request: Request) -> JSONResponse:
        try:
            order = OrderIn.model_validate_json(await request.body())
        except ValidationError as exc:
            return JSONResponse({"error": "validation_error", "detail": str(exc)}, 422)
        return await run_in_threadpool(reserve, order)

    @api.get("/healthz")
    def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return api


def bare_intake() -> FastAPI:
    """Parse the order and answer 202: what any intake costs before it stores anything."""
    api = FastAPI(title="bare intake")

    @api.post("/orders")
    async def create_order(request: Request) -> JSONResponse:
        try:
            order = OrderIn.model_validate_json(await request.body())
        except ValidationError as exc:
            return JSONResponse({"error": "validation_error", "detail": str(exc)}, 422)
        return JSONResponse({"order_id": order.external_id}, status_code=202)

    @api.get("/healthz")
    def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return api


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bare-intake", action="store_true", help="parse and answer 202 only")
    args = parser.parse_args()
    if args.bare_intake:
        # As hub api serves (hub/entrypoints/cli/main.py), but for the app.
        uvicorn.run(
            "bench.baseline_api:bare_intake",
            factory=True,
            workers=get_settings().api_processes,
            host="127.0.0.1",
            port=args.port,
            log_level="warning",
            log_config=None,
            access_log=False,
        )
        return
    uvicorn.run(
        create_baseline(get_settings()),
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
