"""The default (`agent_auth = "strict"`) refuses the original's tokenless calls, and every
refusal the original would not have made names the setting that restores its rules."""

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.compat.conftest import start
from tests.compat.original_client import OriginalAgent
from tests.e2e.server import PULL_TOKEN, ServerProcess

SETTING = 'agent_auth = "original"'


@pytest.fixture
def strict_token(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = start(tmp_path, None, PULL_TOKEN)  # agent_auth left out: the default
    yield proc
    proc.stop()


@pytest.fixture
def strict_open(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = start(tmp_path, None, None)
    yield proc
    proc.stop()


def _refused(reply: httpx.Response, *, names_setting: bool) -> None:
    assert reply.status_code == 401, reply.text
    assert reply.json()["code"] == "unauthorized"
    assert (SETTING in reply.json()["error"]) is names_setting, reply.text


def test_with_a_shared_token_the_tokenless_calls_are_refused_naming_the_setting(
    strict_token: ServerProcess,
) -> None:
    url = strict_token.url
    shared = {"Authorization": f"Bearer {PULL_TOKEN}"}
    agent = OriginalAgent(url, "tokenless", PULL_TOKEN)  # sends the token where the docs say
    with httpx.Client(base_url=url, timeout=30) as http:
        _refused(agent.register(["docs"]), names_setting=True)
        # Registered with the token, it takes a task: dequeue and status carry the token.
        body = {"agent_id": "tokenless", "agent_type": "x", "capabilities": ["docs"]}
        assert http.post("/api/v1/agents/register", json=body, headers=shared).status_code == 200
        created = http.post("/api/v1/tasks", json={"title": "t", "prompt": "p"})
        task_id = created.json()["task_id"]
        got = agent.dequeue(["docs"])
        assert got is not None and got["task_id"] == task_id
        assert agent.status(task_id, "running").status_code == 200

        _refused(agent.heartbeat(), names_setting=True)
        receipt = agent.receipt(task_id, "completed", [])
        _refused(http.post(f"/api/v1/tasks/{task_id}/complete", json=receipt), names_setting=True)
        _refused(http.post("/api/v1/receipts", json=receipt), names_setting=True)
        _refused(agent.deregister(), names_setting=True)
        # The original guarded these two as well: no hint that the setting would help.
        _refused(
            http.post("/api/v1/tasks/dequeue", json={"agent_id": "tokenless"}),
            names_setting=False,
        )
        _refused(
            http.post(
                f"/api/v1/tasks/{task_id}/status", json={"agent_id": "x", "status": "failed"}
            ),
            names_setting=False,
        )
        after = http.get(f"/api/v1/tasks/{task_id}").json()
        assert (after["state"], after["agent_id"]) == ("running", "tokenless")
    agent.close()


def test_without_a_shared_token_a_registered_id_is_still_its_agents(
    strict_open: ServerProcess,
) -> None:
    """Issue 15, finding 8: in open mode anyone re-registered an existing id without a
    token, replaced its capabilities and locked the real agent out of its own token."""
    with httpx.Client(base_url=strict_open.url, timeout=30) as http:
        real = {"agent_id": "real", "agent_type": "claude", "capabilities": ["code:rust"]}
        first = http.post("/api/v1/agents/register", json=real)
        assert first.status_code == 200  # a new id in open mode needs nothing
        token = {"Authorization": f"Bearer {first.json()['registry_token']}"}

        hijack = {**real, "capabilities": ["code:rust", "evil"], "max_concurrency": 64}
        _refused(http.post("/api/v1/agents/register", json=hijack), names_setting=True)
        wrong = {"Authorization": "Bearer guessed-token"}
        _refused(
            http.post("/api/v1/agents/register", json=hijack, headers=wrong), names_setting=True
        )
        for path in ("/api/v1/agents/heartbeat", "/api/v1/agents/deregister"):
            _refused(http.post(path, json={"agent_id": "real"}), names_setting=True)
        _refused(http.post("/api/v1/tasks/dequeue", json={"agent_id": "real"}), names_setting=True)

        agents = {a["agent_id"]: a for a in http.get("/api/v1/agents").json()["agents"]}
        assert agents["real"]["capabilities"] == ["code:rust"]
        assert agents["real"]["max_concurrency"] == 1
        assert agents["real"]["status"] == "online"
        # The real agent's own token still works, and it may register again with it.
        beat = http.post("/api/v1/agents/heartbeat", json={"agent_id": "real"}, headers=token)
        assert beat.status_code == 200, beat.text
        again = http.post("/api/v1/agents/register", json=real, headers=token)
        assert again.status_code == 200, again.text
