"""Our own `agent-fleet agent` keeps working under both rule sets, and restarts under its
id in open mode (where a registered id is protected by its registry token)."""

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.compat.conftest import start
from tests.e2e.agents import start_agent
from tests.e2e.helpers import PATIENCE_SECS, wait_for
from tests.e2e.server import PULL_TOKEN, ServerProcess


@pytest.fixture(
    params=[("strict", None), ("original", PULL_TOKEN), ("original", None)],
    ids=["strict-open", "original-token", "original-open"],
)
def rules(request: pytest.FixtureRequest) -> tuple[str, str | None]:
    agent_auth, token = request.param
    return agent_auth, token


@pytest.fixture
def fleet(tmp_path: Path, rules: tuple[str, str | None]) -> Iterator[ServerProcess]:
    proc = start(tmp_path, *rules)
    yield proc
    proc.stop()


def _run_one(http: httpx.Client, title: str) -> None:
    body = {"title": title, "prompt": "do it", "required_capabilities": ["code"]}
    task_id = http.post("/api/v1/tasks", json=body).json()["task_id"]

    def done() -> bool:
        return http.get(f"/api/v1/tasks/{task_id}").json()["status"] == "completed"

    wait_for(done, timeout=PATIENCE_SECS, what=f"{title} completed by our runner")


def test_our_runner_works_and_restarts_under_its_id(
    fleet: ServerProcess, rules: tuple[str, str | None], tmp_path: Path
) -> None:
    _, token = rules
    work = tmp_path / "ours" / "work"
    with httpx.Client(base_url=fleet.url, timeout=30) as http:
        first = start_agent(fleet, "ours", work, capabilities=("code",), token=token)
        try:
            _run_one(http, "first run")
        finally:
            assert first.stop() == 0, first.output()
        second = start_agent(fleet, "ours", work, capabilities=("code",), token=token)
        try:
            _run_one(http, "after a restart")
        finally:
            second.stop()
        assert "HTTP 401" not in second.output(), second.output()
