# The hub's Tryton module: one sale per sale reference (the hub's order id) and company.
