"""A real `agent-fleet serve` configured as a user of the original would: the original's
keys, no admin token, and `[orchestrator] agent_auth` chosen per test."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.compat.original_client import OriginalAgent, OriginalOperator
from tests.e2e.server import PULL_TOKEN, ServerProcess

#: Open mode (no http_pull_token, the original's default) and token mode.
TOKEN_MODES = {"open": None, "token": PULL_TOKEN}


def original_config(agent_auth: str | None, pull_token: str | None) -> dict[str, Any]:
    return {
        "agent_auth": agent_auth,
        "http_pull_token": pull_token,
        "heartbeat_interval_secs": 60,  # the original's agents beat every 60 s
        "default_max_retries": 0,  # a failed task stays failed until the operator retries
    }


def start(tmp_path: Path, agent_auth: str | None, pull_token: str | None) -> ServerProcess:
    return ServerProcess(
        tmp_path,
        orchestrator=original_config(agent_auth, pull_token),
        server={"admin_token": None},  # the original has none: operator calls are open
    ).start()


@pytest.fixture(params=sorted(TOKEN_MODES))
def pull_token(request: pytest.FixtureRequest) -> str | None:
    token: str | None = TOKEN_MODES[request.param]
    return token


@pytest.fixture
def original_server(tmp_path: Path, pull_token: str | None) -> Iterator[ServerProcess]:
    proc = start(tmp_path, "original", pull_token)
    yield proc
    proc.stop()


@pytest.fixture
def agent_of(original_server: ServerProcess, pull_token: str | None) -> Iterator[Any]:
    """Makes agents of the original against the server; each is closed after the test."""
    made: list[OriginalAgent] = []

    def make(agent_id: str) -> OriginalAgent:
        agent = OriginalAgent(original_server.url, agent_id, pull_token)
        made.append(agent)
        return agent

    yield make
    for agent in made:
        agent.close()


@pytest.fixture
def operator(original_server: ServerProcess) -> Iterator[OriginalOperator]:
    op = OriginalOperator(original_server.url)
    yield op
    op.close()


@pytest.fixture
def oracle(original_server: ServerProcess) -> Iterator[httpx.Client]:
    """The test's own eyes (our field names allowed): never used by the original's client."""
    with httpx.Client(base_url=original_server.url, timeout=30) as client:
        yield client
