"""What the hub looks like from outside: health checks, the snapshot behind ``hub status`` and
``/metrics``, and the structured logs."""
