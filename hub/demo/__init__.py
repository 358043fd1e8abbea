"""``make demo``: the whole hub here, a batch of orders, one failure and its replay."""
