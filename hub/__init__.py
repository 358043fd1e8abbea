"""Order integration hub: intake, outbox, audit, replay and the operator CLI."""
