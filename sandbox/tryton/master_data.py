"""The demo's master data in a freshly activated Tryton database (run by Tryton's own Python).

Usage: ``python master_data.py CONFIG DATABASE PASSWORD SKU=QTY ...``. It creates the company
(EUR), a minimal chart of accounts, this year's fiscal year with invoice sequences, an account
category, one product per sku with stock by an inventory, and the hub's user (sales, stock and
accounting rights, but not "Stock Force Assignment": the hub must never ship negative stock).

Runs inside Tryton's virtual environment, never the hub's: it imports proteus and trytond.
"""

from __future__ import annotations

import datetime
import sys
from decimal import Decimal

from proteus import Model, config
from trytond.modules.account.tests.tools import create_chart, create_fiscalyear, get_accounts
from trytond.modules.account_invoice.tests.tools import set_fiscalyear_invoice_sequences
from trytond.modules.company.tests.tools import create_company, get_company
from trytond.modules.currency.tests.tools import get_currency

# The hub's rights: sell, move stock (and cancel a shipment, the release of a reservation),
# post invoices, create parties. Not "Stock Force Assignment".
HUB_GROUPS = (
    "Sales",
    # Sales Administrator: the "process" button, which recovers a sale confirmed without its
    # shipment (Tryton killed between confirm and its queued process).
    "Sales Administrator",
    "Stock",
    "Stock Cancellation",
    "Accounting",
    "Product Administration",
    "Party Administration",
)


def main(conf: str, database: str, password: str, stock: dict[str, int]) -> None:
    config.set_trytond(database=database, config_file=conf)
    create_company(currency=get_currency("EUR"))
    company = get_company()
    create_chart(company)
    today = datetime.date.today()
    year = (datetime.date(today.year, 1, 1), datetime.date(today.year, 12, 31))
    fiscalyear = set_fiscalyear_invoice_sequences(create_fiscalyear(company, today=year))
    fiscalyear.click("create_period")
    accounts = get_accounts(company)

    category = Model.get("product.category")(name="Hub goods", accounting=True)
    category.account_revenue = accounts["revenue"]
    category.account_expense = accounts["expense"]
    category.save()

    (unit,) = Model.get("product.uom").find([("name", "=", "Unit")])
    template_model = Model.get("product.template")
    products = []
    for sku in stock:
        template = template_model(
            name=f"Product {sku}",
            # A variant's code is its template's code and its own suffix (none here).
            code=sku,
            type="goods",
            salable=True,
            default_uom=unit,
            sale_uom=unit,
            list_price=Decimal("10"),
            account_category=category,
        )
        template.save()
        products.append(template.products[0])
    restock(dict(zip(products, stock.values(), strict=True)))
    create_hub_user(password)


def restock(quantities: dict[object, int]) -> None:
    """Bring each product's on-hand stock up by an inventory in the warehouse's storage."""
    location_model = Model.get("stock.location")
    (storage,) = location_model.find([("code", "=", "STO")])
    inventory = Model.get("stock.inventory")(location=storage)
    for product, quantity in quantities.items():
        line = inventory.lines.new()
        line.product = product
        line.quantity = quantity
    inventory.click("confirm")


def create_hub_user(password: str) -> None:
    groups = Model.get("res.group").find([("name", "in", HUB_GROUPS)])
    assert len(groups) == len(HUB_GROUPS), [g.name for g in groups]
    user = Model.get("res.user")(name="Order hub", login="hub", password=password)
    user.groups.extend(groups)
    company = get_company()
    user.companies.append(Model.get("company.company")(company.id))
    user.company = Model.get("company.company")(company.id)
    user.save()


if __name__ == "__main__" and sys.argv[1:2] == ["--user-only"]:
    config.set_trytond(database=sys.argv[3], config_file=sys.argv[2])
    create_hub_user(sys.argv[4])
elif __name__ == "__main__":
    conf_file, db_name, hub_password, *pairs = sys.argv[1:]
    levels = {sku: int(qty) for sku, qty in (pair.split("=", 1) for pair in pairs)}
    main(conf_file, db_name, hub_password, levels)
