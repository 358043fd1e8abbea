# Two concurrent "search by reference, then create" calls made two sales for one order in a
# trial; with this constraint the second create fails (a UserError the hub reads as "the other
# delivery won: search again").
from trytond.model import Unique
from trytond.pool import PoolMeta


class Sale(metaclass=PoolMeta):
    __name__ = "sale.sale"

    @classmethod
    def __setup__(cls):
        super().__setup__()
        table = cls.__table__()
        cls._sql_constraints += [
            (
                "hub_reference_unique",
                Unique(table, table.company, table.reference),
                "hub_sale_reference.msg_reference_unique",
            ),
        ]
