"""Who an order belongs to: the sender of the API key it came with.

Two names no key can carry (a key's sender starts with a letter or digit), so they never
collide with a real sender's orders.
"""

from __future__ import annotations

# Orders taken while intake auth is off (HUB_INTAKE_AUTH=false): nobody's key, one shared owner.
ANONYMOUS_SENDER = "-anonymous"
# Orders stored before senders owned their orders (migration 0004), when the hub had more than
# one sender or none: which key sent them was never recorded.
LEGACY_SENDER = "-legacy"
