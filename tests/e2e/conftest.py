"""Fixtures for end-to-end tests: a real server process and HTTP clients for its roles."""

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import ADMIN_TOKEN, PULL_TOKEN, ServerProcess


@pytest.fixture
def server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    """The server, with the test's `@pytest.mark.orchestrator(key=value)` settings."""
    marker = request.node.get_closest_marker("orchestrator")
    with ServerProcess(tmp_path, orchestrator=dict(marker.kwargs) if marker else {}) as proc:
        yield proc


@pytest.fixture
def admin(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
    ) as client:
        yield client


@pytest.fixture
def puller(server: ServerProcess) -> Iterator[httpx.Client]:
    """An agent-side client holding the shared http_pull_token."""
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {PULL_TOKEN}"}, timeout=30
    ) as client:
        yield client


@pytest.fixture
def anonymous(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client
