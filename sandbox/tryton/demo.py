"""``make demo ERP=tryton``: the demo with all three systems on a local Tryton.

A fresh copy of the cached template (database hub_tryton_demo) is served on port 26901 (beside
``make tryton``'s 26900) for the length of the demo; the hub's erp, warehouse and accounting
adapters are set to ``tryton`` with the limits a Tryton needs; the failure scene's order is for
``SKU-SCARCE`` and is restocked in Tryton by an inventory. The summary counts Tryton's own
sales, shipments done and invoices posted.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping

from sandbox.tryton import control
from sandbox.tryton.server import TrytonSetupError, local_tryton

DATABASE = "hub_tryton_demo"
PORT = 26901
SCARCE_SKU = "SKU-SCARCE"


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.tryton.demo", description=__doc__)
    parser.add_argument("--orders", type=int, default=20, help="orders in the batch")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    args = parser.parse_args()
    from hub.entrypoints.cli.support import out

    try:
        with local_tryton(DATABASE, PORT) as tryton:
            from hub import bootstrap
            from hub.demo.place import demo_place, describe
            from hub.demo.run import run_demo
            from hub.settings import get_settings

            # The demo's own place beside any configured hub (as hub demo), on this Tryton.
            os.environ.update({**demo_place(get_settings()), **tryton.hub_env()})
            get_settings.cache_clear()
            out.print(describe(get_settings()))
            bootstrap.tryton_workflow.cache_clear()
            admin = control.admin_rpc(tryton.url, tryton.database)

            def set_stock(levels: Mapping[str, int]) -> None:
                control.restock(admin, levels)

            out.print(f"Tryton up at {tryton.url}, database {tryton.database} (a fresh copy)")
            return run_demo(
                get_settings(),
                orders=args.orders,
                workers=args.workers,
                console=out,
                set_stock=set_stock,
                scarce_sku=SCARCE_SKU,
            )
    except TrytonSetupError as exc:
        print(f"make demo ERP=tryton: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
