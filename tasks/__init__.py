"""The Celery app and the hub's tasks (thin: each calls one step function)."""
