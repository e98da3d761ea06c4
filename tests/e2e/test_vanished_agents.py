"""Vanished agents take no work: a long-poll left open by an agent that died, shut down
or deregistered never claims a task for it (issue 14, finding 1)."""

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.agents import AgentProcess, start_agent
from tests.e2e.helpers import PATIENCE_SECS, create, register, task, wait_for
from tests.e2e.server import ServerProcess


@pytest.fixture
def spawn(server: ServerProcess, tmp_path: Path) -> Iterator[Any]:
    started: list[AgentProcess] = []

    def _spawn(agent_id: str) -> AgentProcess:
        agent = start_agent(server, agent_id, tmp_path / agent_id / "work")
        started.append(agent)
        return agent

    yield _spawn
    for agent in started:
        agent.stop()


def agent_row(admin: httpx.Client, agent_id: str) -> dict[str, Any] | None:
    agents = admin.get("/api/v1/agents").json()["agents"]
    return next((a for a in agents if a["agent_id"] == agent_id), None)


def status_of(admin: httpx.Client, agent_id: str) -> str | None:
    row = agent_row(admin, agent_id)
    return None if row is None else str(row["status"])


def wait_until_polling(admin: httpx.Client, agent_id: str) -> None:
    """Registered, then a heartbeat a second later: its first long-poll, sent right
    after registering (and lasting 20 s), is open by then."""
    wait_for(
        lambda: status_of(admin, agent_id) == "online", PATIENCE_SECS, f"{agent_id} registered"
    )
    first = agent_row(admin, agent_id)
    assert first is not None
    wait_for(
        lambda: (
            (agent_row(admin, agent_id) or {}).get("last_heartbeat_at")
            != first["last_heartbeat_at"]
        ),
        20,
        f"{agent_id} to beat once",
    )


def history(admin: httpx.Client, task_id: str) -> list[tuple[str, str]]:
    reply = admin.get(f"/api/v1/tasks/{task_id}/events")
    assert reply.status_code == 200, reply.text
    return [(e["type"], e["actor"]) for e in reply.json()["events"]]


@pytest.mark.orchestrator(heartbeat_timeout_threshold=5)  # the test servers' default waits 30 s
def test_an_agent_killed_while_long_polling_takes_no_task(admin: httpx.Client, spawn: Any) -> None:
    doomed = spawn("doomed")
    wait_until_polling(admin, "doomed")
    doomed.kill9()  # its long-poll is left open on the server, its socket closed
    wait_for(lambda: status_of(admin, "doomed") == "offline", what="doomed to go offline")

    task_id = create(admin, "after the death", [])["task_id"]
    spawn("rescuer")
    wait_for(
        lambda: task(admin, task_id)["state"] == "completed", PATIENCE_SECS, "the rescuer to run it"
    )

    assert task(admin, task_id)["agent_id"] == "rescuer"
    assert ("task.assigned", "doomed") not in history(admin, task_id)


def test_an_agent_that_shut_down_with_a_long_poll_open_takes_no_task(
    admin: httpx.Client, spawn: Any
) -> None:
    leaving = spawn("leaving")
    wait_until_polling(admin, "leaving")
    assert leaving.stop() == 0  # SIGTERM: drops its long-poll, deregisters, exits
    assert status_of(admin, "leaving") == "deregistered"

    task_id = create(admin, "after the goodbye", [])["task_id"]
    spawn("successor")
    wait_for(
        lambda: task(admin, task_id)["state"] == "completed",
        PATIENCE_SECS,
        "the successor to run it",
    )

    assert task(admin, task_id)["agent_id"] == "successor"
    assert ("task.assigned", "leaving") not in history(admin, task_id)


def test_a_long_poll_still_open_when_its_agent_deregisters_takes_nothing(
    admin: httpx.Client, puller: httpx.Client, server: ServerProcess
) -> None:
    """The client is still connected: only the agent's status can stop the claim."""
    register(puller, "leaving", [])
    registered_beat = agent_row(admin, "leaving")
    assert registered_beat is not None
    answer: dict[str, Any] = {}

    def long_poll() -> None:
        with httpx.Client(base_url=server.url, headers=puller.headers, timeout=60) as own:
            reply = own.post("/api/v1/tasks/dequeue", json={"agent_id": "leaving", "wait_secs": 20})
            answer["status"] = reply.status_code

    poller = threading.Thread(target=long_poll)
    poller.start()
    try:
        # The dequeue recorded the agent's liveness: the poll has begun on the server.
        wait_for(
            lambda: (
                (agent_row(admin, "leaving") or {}).get("last_heartbeat_at")
                != registered_beat["last_heartbeat_at"]
            ),
            10,
            "the long-poll to reach the server",
        )
        gone = puller.post("/api/v1/agents/deregister", json={"agent_id": "leaving"})
        assert gone.status_code == 200, gone.text
        task_id = create(admin, "after the deregistration", [])["task_id"]
        poller.join(timeout=30)
        assert not poller.is_alive()
    finally:
        poller.join(timeout=60)
    assert answer["status"] in (204, 404)
    assert task(admin, task_id)["state"] == "created"
    assert [kind for kind, _ in history(admin, task_id)] == ["task.created"]
