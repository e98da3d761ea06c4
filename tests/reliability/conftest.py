"""Fixtures for the reliability suite: real server processes on SQLite files."""

# The same real server and role clients as the end-to-end tests.
from tests.e2e.conftest import admin, anonymous, puller, server

__all__ = ["admin", "anonymous", "puller", "server"]
