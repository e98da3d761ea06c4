"""Several `agent-fleet serve` replicas on one PostgreSQL database, agents hitting them at
random, one replica killed -9 midway: every task completed exactly once."""

import contextlib
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests import processes
from tests.e2e.helpers import PATIENCE_SECS, create
from tests.e2e.server import ADMIN_TOKEN, PULL_TOKEN, ServerProcess

pytestmark = pytest.mark.postgres
TASKS = 300
AGENTS = 8


def test_replicas_share_the_work_and_survive_a_kill(pg_url: str, tmp_path: Path) -> None:
    replicas = []
    with contextlib.ExitStack() as running:
        for n in range(3):
            (tmp_path / f"r{n}").mkdir()
            replica = ServerProcess(tmp_path / f"r{n}", orchestrator={"db_url": pg_url})
            replicas.append(running.enter_context(replica))
        with httpx.Client(
            base_url=replicas[0].url, timeout=30, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        ) as admin:
            ids = {create(admin, f"t{i}", ["pg"])["task_id"] for i in range(TASKS)}
            urls = ",".join(r.url for r in replicas)
            script = Path(__file__).with_name("pull_agent.py")
            agents = [
                processes.spawn(
                    [sys.executable, str(script), urls, PULL_TOKEN, f"pg-{n}", "pg", "4"],
                    stdout=subprocess.PIPE,
                    text=True,
                )
                for n in range(AGENTS)
            ]
            _wait_until_completed(admin, TASKS // 4)
            replicas[1].kill9()  # midway: its in-flight requests are lost
            completed_at_kill = _completed(admin)
            assert completed_at_kill < TASKS, "the kill came too late to mean anything"
            done: list[str] = []
            for agent in agents:
                out, _ = agent.communicate(timeout=600)  # they end once the queue is empty
                assert agent.returncode == 0
                done += json.loads(out)
            with httpx.Client(base_url=replicas[2].url, timeout=30) as other:
                tasks = other.get("/api/v1/tasks", params={"limit": 500}).json()["tasks"]
                assert Counter(t["state"] for t in tasks) == {"completed": TASKS}
                assert {t["task_id"] for t in tasks} == ids
                for task_id in sorted(ids)[:15]:
                    kinds = [
                        e["type"]
                        for e in other.get(f"/api/v1/tasks/{task_id}/events").json()["events"]
                    ]
                    assert kinds.count("task.completed") == 1
            assert set(done) <= ids
            assert max(Counter(done).values()) == 1
            served = [a["agent_id"] for a in admin.get("/api/v1/agents").json()["agents"]]
            assert len(served) == AGENTS
    check = replicas[0].cli("db", "rebuild", "--check", "--config", str(replicas[0].config_path))
    assert check.returncode == 0, check.stderr
    assert "projections match the events" in check.stdout


def _completed(admin: httpx.Client) -> int:
    reply = admin.get("/api/v1/tasks", params={"state": "completed", "limit": 500})
    return len(reply.json()["tasks"])


def _wait_until_completed(admin: httpx.Client, count: int) -> None:
    started = time.monotonic()
    while (done := _completed(admin)) < count:
        assert time.monotonic() - started < PATIENCE_SECS, f"only {done} of {count} completed"
        time.sleep(0.05)


def test_db_copy_moves_an_installation_to_postgresql(
    server: ServerProcess, admin: httpx.Client, puller: httpx.Client, pg_url: str
) -> None:
    from tests.e2e.helpers import dequeue, register

    register(puller, "w", [])
    ids = [create(admin, f"t{i}", [])["task_id"] for i in range(5)]
    got = dequeue(puller, "w")
    assert got is not None
    before = {t["task_id"]: t for t in admin.get("/api/v1/tasks").json()["tasks"]}
    server.stop()
    copied = server.cli("db", "copy", "--from", f"sqlite:///{server.db_path}", "--to", pg_url)
    assert copied.returncode == 0, copied.stderr
    assert "verified" in copied.stdout and "into 5 tasks and 1 agents" in copied.stdout
    again = server.cli("db", "copy", "--from", f"sqlite:///{server.db_path}", "--to", pg_url)
    assert again.returncode == 1 and "already holds events" in again.stderr

    moved = ServerProcess(server.workdir / "pg", orchestrator={"db_url": pg_url})
    moved.workdir.mkdir()
    with moved, httpx.Client(base_url=moved.url, timeout=30) as client:
        after = {t["task_id"]: t for t in client.get("/api/v1/tasks").json()["tasks"]}
        assert after == before and set(after) == set(ids)
        assert client.get("/healthz").json()["store"] == "postgresql"
