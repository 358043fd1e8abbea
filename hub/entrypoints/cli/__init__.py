"""The operators' ``hub`` commands (``hub demo`` is added by ``hub.__main__``)."""
