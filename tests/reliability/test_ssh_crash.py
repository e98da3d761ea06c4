"""ssh_cli under crashes and a cut connection: detached runs outlive the orchestrator and
its SSH connections, and each result is recorded exactly once."""

import random
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.e2e.helpers import wait_for_state
from tests.e2e.server import ADMIN_TOKEN, ServerProcess
from tests.e2e.test_ssh_cli import AGENT_TYPES, event_types, host_block, log_text, make
from tests.reliability.support import audit, rebuild_agrees
from tests.sshd import SshServer

KILLS = 4
TASKS = 16


@pytest.mark.timeout(900)
def test_runs_in_flight_survive_repeated_kill9_and_complete_once(
    tmp_path: Path, sshd: SshServer
) -> None:
    rng = random.Random(7)
    extra = (
        host_block("local", tmp_path / "local", None, slots=3)
        + host_block("remote", tmp_path / "remote", sshd, slots=3)
        + AGENT_TYPES
    )
    server = ServerProcess(
        tmp_path,
        # max_retries 0: every kill lands mid-launch for some task, and an attempt our
        # own crash ended must not count. Only the agent's own failures may.
        orchestrator={
            "dispatch_interval_secs": 1,
            "ssh_poll_interval_secs": 0.2,
            "default_max_retries": 0,
            # Beside CPU hogs each restart takes ~15 s: the four of them must not add up
            # to a task's timeout (this test is about crashes, not timeouts).
            "task_timeout_secs": 900,
        },
        extra_toml=extra,
    )
    with (
        server,
        httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
        ) as admin,
    ):
        ids = [make(admin, f"SLEEP {rng.uniform(0.3, 2.5):.2f} ECHO run {n}") for n in range(TASKS)]
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.4, 1.5))
            server.kill9()
            time.sleep(rng.uniform(0.0, 1.0))  # runs go on (or end) while nobody watches
            server.start()
        bodies = {}
        for task_id in ids:
            bodies[task_id] = wait_for_state(admin, task_id, "completed", timeout=240)
            assert "all done" in log_text(admin, task_id)
        histories = {t: _history(admin, t) for t in ids}
    assert all(_types(h).count("task.completed") == 1 for h in histories.values()), histories
    found = audit(server.db_path)
    assert found.problems == []
    assert sum(found.completed.values()) == TASKS
    rebuild_agrees(server)
    lost = [e for h in histories.values() for e in h if e["type"] == "task.agent_lost"]
    # Only a crash of ours ended an attempt here: each loss says so, and none counted.
    assert all(e["data"]["cause"] == "orchestrator_restart" for e in lost), lost
    for task_id, body in bodies.items():  # and the API shows every extra attempt as free
        losses = _types(histories[task_id]).count("task.agent_lost")
        assert body["attempt"] == body["free_attempts"] == losses, (body, histories[task_id])
    print(f"ssh_cli crash: {KILLS} kills, {TASKS} tasks, {found.events} events, {len(lost)} lost")


def _history(admin: httpx.Client, task_id: str) -> list[dict[str, Any]]:
    reply = admin.get(f"/api/v1/tasks/{task_id}/events")
    assert reply.status_code == 200, reply.text
    events: list[dict[str, Any]] = reply.json()["events"]
    return events


def _types(history: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in history]


def test_a_cut_ssh_connection_mid_run_loses_nothing(tmp_path: Path, sshd: SshServer) -> None:
    gate = tmp_path / "go"
    with (
        ServerProcess(
            tmp_path,
            orchestrator={"dispatch_interval_secs": 1, "ssh_poll_interval_secs": 0.2},
            extra_toml=host_block("remote", tmp_path / "remote", sshd, slots=2) + AGENT_TYPES,
        ) as server,
        httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
        ) as admin,
    ):
        task_id = make(admin, f"WAIT {gate} ECHO through the cut")
        wait_for_state(admin, task_id, "running")
        cut = _cut_connections(sshd)
        assert cut
        gate.touch()  # it ends only after the cut
        wait_for_state(admin, task_id, "completed")
        types = event_types(admin, task_id)
        output = log_text(admin, task_id)
        reconnected = _connections(sshd)
    assert types.count("task.completed") == 1 and "task.agent_lost" not in types, types
    assert "all done" in output
    assert reconnected and not reconnected & cut  # new connections, the old ones gone


def _connections(sshd: SshServer) -> set[int]:
    """sshd's per-connection processes (one per SSH connection)."""
    assert sshd.proc is not None
    return {child.pid for child in psutil.Process(sshd.proc.pid).children()}


def _cut_connections(sshd: SshServer) -> set[int]:
    """Kill sshd's per-connection processes: every SSH connection drops at once, while
    the detached runs (their own sessions, re-parented away from sshd) carry on."""
    cut = _connections(sshd)
    for pid in cut:
        psutil.Process(pid).kill()
    return cut
