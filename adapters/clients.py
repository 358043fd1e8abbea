"""The three downstream clients, together (``hub.bootstrap`` builds them from the settings)."""

from __future__ import annotations

from dataclasses import dataclass

from adapters.accounting import AccountingClient
from adapters.erp import ErpClient
from adapters.warehouse import WarehouseClient


@dataclass(frozen=True)
class Downstream:
    """Every downstream system the order chain calls."""

    erp: ErpClient
    warehouse: WarehouseClient
    accounting: AccountingClient
