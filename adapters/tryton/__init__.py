"""Tryton as the ERP, warehouse and accounting system (JSON-RPC; docs/erp-tryton.md)."""
