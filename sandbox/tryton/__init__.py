"""A local Tryton (a real ERP) for the demo, the tests and the bench."""
