"""Trial mode: ``make demo`` on SQLite and filesystem:// when no server answers."""
