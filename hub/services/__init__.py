"""Use cases: intake, the outbox, running a step, replay, dead letters, keys, reconcile."""
