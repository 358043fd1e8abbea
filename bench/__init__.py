"""Benchmarks and the chaos suite of the hub: ``python -m bench``, ``python -m bench.chaos``.

Everything here drives the real parts (PostgreSQL, RabbitMQ, worker processes, the sandbox
systems on loopback) through the same ``Supervisor`` the demo and the end-to-end tests use.
"""
