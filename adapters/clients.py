"""The three downstream clients, built together from the settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from adapters.accounting import AccountingClient
from adapters.erp import ErpClient
from adapters.warehouse import WarehouseClient

if TYPE_CHECKING:
    from hub.settings import Settings


@dataclass(frozen=True)
class Downstream:
    """Every downstream system the order chain calls."""

    erp: ErpClient
    warehouse: WarehouseClient
    accounting: AccountingClient


def downstream_from_settings(settings: Settings) -> Downstream:
    """Build the ERP, warehouse and accounting clients from one Settings."""
    return Downstream(
        erp=ErpClient.from_settings(settings),
        warehouse=WarehouseClient.from_settings(settings),
        accounting=AccountingClient.from_settings(settings),
    )
