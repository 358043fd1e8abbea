"""HTTP clients of the downstream systems (ERP, warehouse, accounting) and their sandboxes."""
