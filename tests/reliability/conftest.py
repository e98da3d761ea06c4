"""Fixtures for the reliability suite: real server processes on SQLite files."""

from collections.abc import Iterator

import pytest

# The same real server and role clients as the end-to-end tests.
from tests.e2e.conftest import admin, anonymous, puller, server
from tests.reliability.support import STARTED

__all__ = ["admin", "anonymous", "puller", "server"]


@pytest.fixture(autouse=True)
def _reap_agents() -> Iterator[None]:
    """Agent processes a test started never outlive it."""
    yield
    while STARTED:
        STARTED.pop().reap()
