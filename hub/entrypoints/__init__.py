"""Entry points: the intake API, the operator UI, the relay and the ``hub`` commands."""
