"""The pure core: the pipeline's definition and the step, retry and breaker logic (no I/O)."""
