"""Fixtures for the reliability suite: real server processes on SQLite files."""

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import ADMIN_TOKEN, PULL_TOKEN, ServerProcess
from tests.reliability.support import STARTED


@pytest.fixture(autouse=True)
def _reap_agents() -> Iterator[None]:
    """Agent processes a test started never outlive it."""
    yield
    while STARTED:
        STARTED.pop().reap()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path).start()
    yield proc
    proc.stop()


@pytest.fixture
def admin(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
    ) as client:
        yield client


@pytest.fixture
def puller(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {PULL_TOKEN}"}, timeout=30
    ) as client:
        yield client


@pytest.fixture
def anonymous(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client
