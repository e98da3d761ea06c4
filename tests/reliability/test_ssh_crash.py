"""ssh_cli under crashes and a cut connection: detached runs outlive the orchestrator and
its SSH connections, and each result is recorded exactly once."""

import random
import time
from pathlib import Path

import httpx
import psutil

from tests.e2e.helpers import wait_for
from tests.e2e.server import ADMIN_TOKEN, ServerProcess
from tests.e2e.test_ssh_cli import AGENT_TYPES, event_types, host_block, log_text, make, state_of
from tests.reliability.support import audit, rebuild_agrees
from tests.sshd import SshServer

KILLS = 4
TASKS = 16


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
        orchestrator={"dispatch_interval_secs": 1, "ssh_poll_interval_secs": 0.2},
        extra_toml=extra,
    ).start()
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
    ) as admin:
        ids = [make(admin, f"SLEEP {rng.uniform(0.3, 2.5):.2f} ECHO run {n}") for n in range(TASKS)]
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.4, 1.5))
            server.kill9()
            time.sleep(rng.uniform(0.0, 1.0))  # runs go on (or end) while nobody watches
            server.start()
        for task_id in ids:
            wait_for(lambda t=task_id: state_of(admin, t) == "completed", 90, "completed")
            assert "all done" in log_text(admin, task_id)
        histories = {t: event_types(admin, t) for t in ids}
    server.stop()
    assert all(h.count("task.completed") == 1 for h in histories.values()), histories
    found = audit(server.db_path)
    assert found.problems == []
    assert sum(found.completed.values()) == TASKS
    rebuild_agrees(server)
    lost = sum(h.count("task.agent_lost") for h in histories.values())
    print(f"ssh_cli crash: {KILLS} kills, {TASKS} tasks, {found.events} events, {lost} lost")


def test_a_cut_ssh_connection_mid_run_loses_nothing(tmp_path: Path, sshd: SshServer) -> None:
    server = ServerProcess(
        tmp_path,
        orchestrator={"dispatch_interval_secs": 1, "ssh_poll_interval_secs": 0.2},
        extra_toml=host_block("remote", tmp_path / "remote", sshd, slots=2) + AGENT_TYPES,
    ).start()
    try:
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
        ) as admin:
            task_id = make(admin, "SLEEP 3 ECHO through the cut")
            wait_for(lambda: state_of(admin, task_id) == "running", 30, "running")
            cut = _cut_connections(sshd)
            assert cut
            wait_for(lambda: state_of(admin, task_id) == "completed", 60, "completed")
            types = event_types(admin, task_id)
            output = log_text(admin, task_id)
            reconnected = _connections(sshd)
    finally:
        server.stop()
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
