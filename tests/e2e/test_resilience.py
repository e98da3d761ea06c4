"""Silent agents, kill -9 of the server, and `db rebuild` agreeing afterwards."""

import httpx
import pytest

from tests.e2e.helpers import create, dequeue, events, register, task, wait_for
from tests.e2e.server import ServerProcess

#: Silent agents are lost after 10 s here (the default waits 30 s).
QUICK_LOSS = pytest.mark.orchestrator(heartbeat_timeout_threshold=10)


@QUICK_LOSS
def test_silent_agent_loses_its_task_which_is_retried(
    admin: httpx.Client, puller: httpx.Client
) -> None:
    register(puller, "silent", [])
    register(puller, "alive", [])
    task_id = create(admin, "t", [])["task_id"]
    got = dequeue(puller, "silent")
    assert got is not None and got[0] == task_id
    started = puller.post(
        f"/api/v1/tasks/{task_id}/status",
        json={"agent_id": "silent", "lease": got[1], "state": "running"},
    )
    assert started.status_code == 200, started.text

    # "alive" keeps beating while "silent" says nothing (interval 1 s, threshold 10).
    def alive_gets_it() -> bool:
        puller.post("/api/v1/agents/heartbeat", json={"agent_id": "alive"})
        return dequeue(puller, "alive") is not None

    wait_for(alive_gets_it, what="the lost task to reach another agent")
    history = events(admin, task_id)
    assert history[:6] == [
        "task.created",
        "task.assigned",
        "task.started",
        "task.agent_lost",
        "task.retried",
        "task.assigned",
    ]
    current = task(admin, task_id)
    assert current["agent_id"] == "alive" and current["attempt"] == 1
    agents = {a["agent_id"]: a["status"] for a in admin.get("/api/v1/agents").json()["agents"]}
    assert agents["silent"] == "offline"
    # The silent agent's late receipt is fenced off.
    late = puller.post(
        f"/api/v1/tasks/{task_id}/complete",
        json={"agent_id": "silent", "lease": got[1], "status": "completed"},
    )
    assert late.status_code == 409
    assert task(admin, task_id)["state"] == "assigned"


def test_kill_9_and_restart_loses_nothing(
    server: ServerProcess, admin: httpx.Client, puller: httpx.Client
) -> None:
    register(puller, "w", [], slots=5)
    ids = [create(admin, f"t{i}", [])["task_id"] for i in range(10)]
    handed = []
    for _ in range(3):
        got = dequeue(puller, "w")
        assert got is not None
        puller.post(
            f"/api/v1/tasks/{got[0]}/status",
            json={"agent_id": "w", "lease": got[1], "state": "running"},
        )
        handed.append(got)
    puller.post(
        f"/api/v1/tasks/{handed[0][0]}/complete",
        json={"agent_id": "w", "lease": handed[0][1], "status": "completed"},
    )
    assert dequeue(puller, "w", wait=0) is not None  # a fourth, assigned and not started
    before = {t["task_id"]: t for t in admin.get("/api/v1/tasks").json()["tasks"]}

    server.kill9()
    server.start()

    after = {t["task_id"]: t for t in admin.get("/api/v1/tasks").json()["tasks"]}
    assert after == before
    states = sorted(t["state"] for t in after.values())
    assert states == ["assigned", "completed"] + ["created"] * 6 + ["running"] * 2
    assert len(ids) == 10
    # The unstarted task comes back to the same agent with the same lease.
    unstarted = next(t for t in after.values() if t["state"] == "assigned")
    again = dequeue(puller, "w")
    assert again is not None and again[0] == unstarted["task_id"]
    # The running attempts' leases still work after the restart.
    still = puller.post(
        f"/api/v1/tasks/{handed[1][0]}/complete",
        json={"agent_id": "w", "lease": handed[1][1], "status": "completed"},
    )
    assert still.status_code == 200 and still.json()["state"] == "completed"
    server.stop()
    check = server.cli("db", "rebuild", "--check", "--config", str(server.config_path))
    assert check.returncode == 0, check.stderr
    assert "projections match the events" in check.stdout
    assert "replayed" in check.stdout


def test_rebuild_detects_a_tampered_projection(server: ServerProcess, admin: httpx.Client) -> None:
    import sqlite3

    task_id = create(admin, "t", [])["task_id"]
    server.stop()
    with sqlite3.connect(server.db_path) as conn:
        conn.execute('UPDATE tasks SET body = replace(body, \'"title":"t"\', \'"title":"x"\')')
    check = server.cli("db", "rebuild", "--config", str(server.config_path))
    assert check.returncode == 1
    assert f"task {task_id}: projection differs from the replay" in check.stderr
    repaired = server.cli("db", "rebuild", "--check", "--config", str(server.config_path))
    assert repaired.returncode == 0, repaired.stderr
