"""The snapshot: facts (the dataclasses), the database's and the broker's halves, and take."""
