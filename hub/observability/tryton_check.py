"""``hub doctor``'s Tryton checks, for a hub with any system on ``HUB_<SYSTEM>_ADAPTER=tryton``.

What goes wrong when an operator points the hub at a Tryton: nothing answers at the URL, the
database is not served (Tryton 8 serves only the databases named when trytond started), the
hub's user cannot log in, or it holds "Stock Force Assignment" (``assign_force`` would ship
stock that is not there), a module the steps use is not activated, or a sku of a sample order
(HUB_TRYTON__SAMPLE_SKUS) is no salable product. Each is a problem with its fix.
"""

from __future__ import annotations

import requests

from adapters.tryton.rpc import TrytonConnection, TrytonRpc
from hub.core.errors import DownstreamError, TransientError
from hub.observability.doctor import Problem
from hub.settings import Settings

CHECK = "tryton"
# The group whose members may force a shipment's assignment (negative stock).
FORCE_GROUP = "Stock Force Assignment"
# The modules the steps call (adapters/tryton/workflow.py): the sale and its customer shipment,
# the invoice, and the invoice drafted from the shipment done (invoice_method "fulfillment").
REQUIRED_MODULES = ("sale", "stock", "account_invoice", "account_invoice_stock")
# The hub's own module: a unique (company, reference) on sales, a second guard beside the lease.
ADVISED_MODULE = "hub_sale_reference"


def tryton_systems(settings: Settings) -> list[str]:
    return sorted(name for name, system in settings.systems.items() if system.adapter == "tryton")


def rpc_of(settings: Settings) -> TrytonRpc:
    tryton = settings.tryton
    return TrytonRpc(
        TrytonConnection(
            url=tryton.url,
            database=tryton.database,
            user=tryton.user,
            password=tryton.password.get_secret_value(),
            connect_timeout=tryton.connect_timeout,
            read_timeout=tryton.read_timeout,
        )
    )


def check_tryton(settings: Settings, rpc: TrytonRpc | None = None) -> list[Problem]:
    systems = tryton_systems(settings)
    if not systems:
        return []
    tryton = settings.tryton
    where = f"Tryton at {tryton.url}, database {tryton.database!r} (for {', '.join(systems)})"
    rpc = rpc or rpc_of(settings)
    try:
        rpc.call("model.sale.sale.search_count", [])
        own = rpc.call("model.res.user.get_preferences", False).get("groups") or []
        groups = rpc.call("model.res.group.read", own, ["name"])
    except DownstreamError as exc:
        return [diagnose(where, settings, exc)]
    found: list[Problem] = []
    if any(group["name"] == FORCE_GROUP for group in groups):
        found.append(
            Problem(
                CHECK,
                f"{where}: the hub's user {tryton.user!r} is in {FORCE_GROUP!r}: an assignment "
                "it cannot make could be forced, shipping stock that is not there",
                f"remove {tryton.user!r} from the group {FORCE_GROUP!r} in Tryton "
                "(Administration > Users > Groups)",
            )
        )
    try:
        found += check_modules(where, settings, rpc)
        found += check_skus(where, settings.tryton.skus, rpc)
    except DownstreamError as exc:
        found.append(diagnose(where, settings, exc))
    return found


def check_modules(where: str, settings: Settings, rpc: TrytonRpc) -> list[Problem]:
    """Every module the steps use activated; the hub's own module advised."""
    wanted = [*REQUIRED_MODULES, ADVISED_MODULE]
    rows = rpc.call(
        "model.ir.module.search_read",
        [["name", "in", wanted]],
        0,
        None,
        None,
        ["name", "state"],
    )
    activated = {row["name"] for row in rows if row["state"] == "activated"}
    found = []
    missing = [name for name in REQUIRED_MODULES if name not in activated]
    if missing:
        names = ", ".join(missing)
        found.append(
            Problem(
                CHECK,
                f"{where}: the module(s) {names} not activated: the hub's steps call their "
                "models (the sale and its shipment, the invoice drafted from the shipment)",
                f"activate {names} in Tryton (Administration > Modules > Modules, or "
                f"trytond-admin -c <config> -d {settings.tryton.database} -u {' '.join(missing)} "
                "--activate-dependencies)",
            )
        )
    if ADVISED_MODULE not in activated:
        found.append(
            Problem(
                CHECK,
                f"{where}: the module {ADVISED_MODULE} is not activated: only the hub's lease "
                "keeps two sales of one order from being made (Tryton's sale reference is not "
                "unique)",
                f"install sandbox/tryton/modules/{ADVISED_MODULE} in trytond's modules and "
                f"activate it (trytond-admin ... -u {ADVISED_MODULE})",
                severity="advice",
            )
        )
    return found


def check_skus(where: str, skus: list[str], rpc: TrytonRpc) -> list[Problem]:
    """Each sku of the sample order a product (by code) that can be sold."""
    if not skus:
        return []
    rows = rpc.call(
        "model.product.product.search_read",
        [["code", "in", skus]],
        0,
        None,
        None,
        ["code", "salable"],
    )
    by_code = {str(row["code"]): row for row in rows}
    found = []
    missing = [sku for sku in skus if sku not in by_code]
    if missing:
        found.append(
            Problem(
                CHECK,
                f"{where}: no active product has the code {', '.join(missing)}: an order with "
                "that sku fails unknown_sku",
                "create the product in Tryton with the sku as its Code (Product > Products), "
                "or fix HUB_TRYTON__SAMPLE_SKUS",
            )
        )
    unsalable = [sku for sku in skus if sku in by_code and not by_code[sku]["salable"]]
    if unsalable:
        found.append(
            Problem(
                CHECK,
                f"{where}: the product(s) {', '.join(unsalable)} are not salable: Tryton "
                "refuses them on a sale",
                "tick Salable on them in Tryton (Product > Products, the Sale tab)",
            )
        )
    return found


def answers(url: str) -> bool:
    """Whether a web server answers at ``url`` at all (any status under 500)."""
    try:
        return requests.get(url.rstrip("/") + "/", timeout=5).status_code < 500
    except requests.RequestException:
        return False


def diagnose(where: str, settings: Settings, exc: DownstreamError) -> Problem:
    tryton = settings.tryton
    not_served = Problem(
        CHECK,
        f"{where}: Tryton answers, but not for that database ({exc.message})",
        f"create the database or fix HUB_TRYTON__DATABASE; Tryton 8 serves only the databases "
        f"named when it started: restart it with trytond -d {tryton.database}",
    )
    if exc.status == 404 or "'res.user'" in exc.message:
        # 404: an unknown database; KeyError 'res.user': one trytond was not started with.
        return not_served
    if isinstance(exc, TransientError) and "connection failed" in exc.message:
        # Tryton 8.2 drops the connection of a call to a database PostgreSQL does not have.
        if answers(tryton.url):
            return not_served
        return Problem(
            CHECK,
            f"{where}: nothing answers ({exc.message})",
            "start Tryton (make tryton for the local one) or fix HUB_TRYTON__URL",
        )
    if exc.code == "unauthorized" or exc.status in (401, 403):
        return Problem(
            CHECK,
            f"{where}: the login of {tryton.user!r} is refused ({exc.message})",
            "fix HUB_TRYTON__USER / HUB_TRYTON__PASSWORD, or create that user in Tryton with "
            "the groups docs/erp-tryton.md lists",
        )
    return Problem(
        CHECK,
        f"{where}: {exc.message}",
        "see Tryton's log; docs/erp-tryton.md lists what the hub needs of a Tryton",
    )
