"""``make pg-chaos``: orders streaming in while the PostgreSQL primary is lost."""
