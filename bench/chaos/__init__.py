"""``make chaos``: orders under a nemesis, then the exactly-once check (``hub reconcile``)."""
