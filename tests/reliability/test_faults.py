"""Injected faults: an agent killed -9 or frozen mid-task, and a store that cannot be written.

The server runs with a 1 s heartbeat interval and a threshold of 10, so a silent
agent is declared lost after ~10 s and its task is retried (no backoff); the agents
that stay beat every 0.3 s.
"""

import os
import shutil
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.e2e.helpers import create, task, wait_for
from tests.e2e.server import ServerProcess
from tests.reliability.support import ChaosAgent, audit, rebuild_agrees

LOST_THEN_DONE = [
    "task.created",
    "task.assigned",
    "task.started",
    "task.agent_lost",
    "task.retried",
    "task.assigned",
    "task.started",
    "task.completed",
]


def _history(client: httpx.Client, task_id: str) -> list[dict[str, object]]:
    reply = client.get(f"/api/v1/tasks/{task_id}/events")
    assert reply.status_code == 200, reply.text
    events: list[dict[str, object]] = reply.json()["events"]
    return events


def _hold(server: ServerProcess, admin: httpx.Client, agent_id: str, release: Path) -> ChaosAgent:
    """An agent that takes the one queued task, starts it, then waits for `release`."""
    holder = ChaosAgent.start(server, agent_id, "--once", "--hold-until", str(release))
    wait_for(lambda: bool(holder.holding()), what=f"{agent_id} to take the task")
    task_id = holder.holding()[0]
    wait_for(lambda: task(admin, task_id)["state"] == "running", what="the task to run")
    return holder


QUICK_LOSS = pytest.mark.orchestrator(heartbeat_timeout_threshold=10)


@QUICK_LOSS
def test_agent_killed_mid_task_loses_it_to_another_which_completes_it(
    server: ServerProcess, admin: httpx.Client, tmp_path: Path
) -> None:
    task_id = create(admin, "killed mid-task", [])["task_id"]
    victim = _hold(server, admin, "victim", tmp_path / "never")
    victim.kill9()
    rescuer = ChaosAgent.start(server, "rescuer", "--once")
    report = rescuer.report(timeout=30)

    assert report["completed"] == [[task_id, 1]]
    history = _history(admin, task_id)
    assert [e["type"] for e in history] == LOST_THEN_DONE
    assigned = [
        (e["data"]["agent_id"], e["data"]["attempt"])
        for e in history
        if e["type"] == "task.assigned"
    ]  # type: ignore[index]
    assert assigned == [("victim", 0), ("rescuer", 1)]
    assert task(admin, task_id)["agent_id"] == "rescuer"
    agents = {a["agent_id"]: a["status"] for a in admin.get("/api/v1/agents").json()["agents"]}
    assert agents["victim"] == "offline"
    server.stop()
    result = audit(server.db_path)
    assert result.problems == [] and result.completed[task_id] == 1
    rebuild_agrees(server)


@QUICK_LOSS
def test_frozen_agent_is_fenced_off_when_it_wakes(
    server: ServerProcess, admin: httpx.Client, tmp_path: Path
) -> None:
    task_id = create(admin, "frozen mid-task", [])["task_id"]
    release = tmp_path / "release"
    frozen = _hold(server, admin, "frozen", release)
    frozen.signal(signal.SIGSTOP)
    try:
        rescuer = ChaosAgent.start(server, "rescuer", "--once")
        assert rescuer.report(timeout=30)["completed"] == [[task_id, 1]]
        release.touch()
    finally:
        frozen.signal(signal.SIGCONT)
    late = frozen.report(timeout=30)

    # Its late status and receipt both met the lease of the new attempt.
    steps = {(r["step"], r["status"], r["code"]) for r in late["refused"]}
    assert steps == {("late-status", 409, "stale_lease"), ("complete", 409, "stale_lease")}
    assert late["completed"] == []
    history = _history(admin, task_id)
    assert [e["type"] for e in history] == LOST_THEN_DONE
    done = task(admin, task_id)
    assert done["state"] == "completed" and done["agent_id"] == "rescuer"
    assert done["receipt"]["summary"] == "attempt 1 by rescuer"
    server.stop()
    result = audit(server.db_path)
    assert result.problems == [] and result.completed[task_id] == 1
    rebuild_agrees(server)


def _can_make_immutable(probe: Path) -> str | None:
    """Why `chattr +i` cannot freeze files here, or None when it can."""
    if shutil.which("chattr") is None:
        return "chattr is not installed"
    if os.geteuid() != 0:
        return "chattr +i needs CAP_LINUX_IMMUTABLE (root); chmod cannot stop an open fd"
    probe.write_text("probe")
    done = subprocess.run(["chattr", "+i", str(probe)], capture_output=True, text=True)
    if done.returncode != 0:
        return f"this filesystem refuses chattr +i: {done.stderr.strip()}"
    subprocess.run(["chattr", "-i", str(probe)], check=True)
    probe.unlink()
    return None


@contextmanager
def _immutable(paths: list[Path]) -> Iterator[None]:
    """The database files and their directory made immutable: even root cannot write them.

    Tests run as root here, where a read-only mode bit means nothing and an
    already-open descriptor would keep writing anyway; the immutable flag stops
    writes through open descriptors too (SQLite gets EPERM → disk I/O error).
    """
    subprocess.run(["chattr", "+i", *map(str, paths)], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", *map(str, paths)], check=True)


def test_unwritable_database_gives_clear_errors_and_recovers(
    server: ServerProcess, admin: httpx.Client, puller: httpx.Client, tmp_path: Path
) -> None:
    reason = _can_make_immutable(tmp_path / "probe")
    if reason:
        pytest.skip(reason)
    before = create(admin, "written before the fault", [])["task_id"]
    puller.post(
        "/api/v1/agents/register",
        json={"agent_id": "w", "agent_type": "x", "capabilities": [], "max_concurrency": 1},
    ).raise_for_status()
    db = server.db_path
    frozen = [db, db.with_name(db.name + "-wal"), db.parent]
    writes = [
        (admin, "/api/v1/tasks", {"title": "during the fault", "prompt": "p"}),
        (puller, "/api/v1/tasks/dequeue", {"agent_id": "w"}),
        (puller, "/api/v1/agents/register", {"agent_id": "w2", "agent_type": "x"}),
        (admin, f"/api/v1/tasks/{before}/cancel", None),
    ]
    refused = []
    with _immutable(frozen):
        for client, path, body in writes:
            reply = client.post(path, json=body)
            refused.append((path, reply.status_code, reply.json()))
        reads = [admin.get("/api/v1/tasks"), admin.get(f"/api/v1/tasks/{before}")]
    for path, status, body in refused:
        assert status == 503, (path, status, body)
        assert body == {"error": "the store is unavailable", "code": "store_unavailable"}
    for read in reads:
        assert read.status_code == 200, read.text

    # Fixed: the same server takes writes again, and nothing half-written shows.
    wait_for(
        lambda: (
            admin.post("/api/v1/tasks", json={"title": "after", "prompt": "p"}).status_code == 201
        ),
        what="writes to work again",
    )
    titles = sorted(t["title"] for t in admin.get("/api/v1/tasks").json()["tasks"])
    assert titles == ["after", "written before the fault"]
    assert task(admin, before)["state"] == "created"
    server.stop()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert audit(db).problems == []
    rebuild_agrees(server)
    assert "Traceback" not in "".join(str(r) for r in refused)
