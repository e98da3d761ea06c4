"""Event stores: SQLite (embedded default) and the shared codec and migrations."""
