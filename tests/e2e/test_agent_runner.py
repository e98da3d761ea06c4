"""`agent-fleet agent` processes against the real server, running a stand-in CLI."""

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.agents import AgentProcess, start_agent
from tests.e2e.helpers import PATIENCE_SECS, create, events, task, wait_for, wait_for_state
from tests.e2e.server import ServerProcess


@pytest.fixture
def spawn(server: ServerProcess, tmp_path: Path) -> Iterator[object]:
    started: list[AgentProcess] = []

    def _spawn(agent_id: str, **kwargs: object) -> AgentProcess:
        agent = start_agent(server, agent_id, tmp_path / agent_id / "work", **kwargs)  # type: ignore[arg-type]
        started.append(agent)
        return agent

    yield _spawn
    for agent in started:
        agent.stop()


def state_of(admin: httpx.Client, task_id: str) -> str:
    return str(task(admin, task_id)["state"])


def test_tasks_complete_with_the_clis_receipt(admin: httpx.Client, spawn) -> None:  # type: ignore[no-untyped-def]
    spawn("runner-1", capabilities=("code",))
    plain = create(admin, "plain", ["code"])["task_id"]
    with_pr = create(admin, "pr", ["code"], prompt="please RECEIPT")["task_id"]
    done = wait_for_state(admin, plain, "completed")
    wait_for_state(admin, with_pr, "review_pending")
    assert "all done" in done["receipt"]["summary"]
    assert done["receipt"]["agent_id"] == "runner-1"
    pr_task = task(admin, with_pr)
    assert pr_task["pr"]["url"] == "https://forge.example/o/r/pulls/42"
    usage = pr_task["receipt"]["usage"]
    assert (usage["tokens"], usage["cost_usd"]) == (321, 0.01)
    log = admin.get(f"/api/v1/tasks/{plain}/logs").text
    assert f"task {plain} attempt 0" in log and f"branch task/{plain}" in log


def test_a_failing_cli_retries_then_fails(admin: httpx.Client, spawn) -> None:  # type: ignore[no-untyped-def]
    spawn("runner-1")
    task_id = create(admin, "broken", [], prompt="FAIL", max_retries=1)["task_id"]
    final = wait_for_state(admin, task_id, "failed")
    assert final["attempt"] == 1
    assert final["failure"]["reason"] == "error"
    assert "exit code 3" in final["failure"]["message"]
    assert events(admin, task_id).count("task.retried") == 1


def test_logs_are_readable_while_running(admin: httpx.Client, spawn, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    spawn("runner-1")
    gate = tmp_path / "go"
    task_id = create(admin, "slow", [], prompt=f"WAIT {gate}")["task_id"]
    wait_for(
        lambda: "waiting step 2" in admin.get(f"/api/v1/tasks/{task_id}/logs").text,
        what="the live log",
        seen=lambda: admin.get(f"/api/v1/tasks/{task_id}/logs").text[-300:],
    )
    assert state_of(admin, task_id) == "running"
    gate.touch()
    wait_for_state(admin, task_id, "completed")
    full = admin.get(f"/api/v1/tasks/{task_id}/logs").text
    steps = [line for line in full.splitlines() if line.startswith("waiting step")]
    assert steps == [f"waiting step {i}" for i in range(len(steps))], "lost or doubled lines"


def test_cancel_kills_the_process_within_seconds(
    admin: httpx.Client,
    spawn,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    spawn("runner-1")
    pidfile = tmp_path / "cli.pid"
    task_id = create(admin, "long", [], prompt=f"PIDFILE {pidfile} SLEEP 600")["task_id"]
    wait_for(lambda: pidfile.exists() and pidfile.read_text() != "", what="the CLI to start")
    pid = int(pidfile.read_text())
    admin.post(f"/api/v1/tasks/{task_id}/cancel")
    # It would sleep ten minutes: dead within the wait means the cancel killed it.
    wait_for(lambda: not _alive(pid), what="the CLI to be killed")
    assert state_of(admin, task_id) == "cancelled"


@pytest.mark.orchestrator(heartbeat_timeout_threshold=10)  # the default waits 30 s
def test_killed_agent_loses_the_task_to_another(admin: httpx.Client, spawn) -> None:  # type: ignore[no-untyped-def]
    first = spawn("doomed")
    task_id = create(admin, "t", [], prompt="SLEEP 600")["task_id"]
    wait_for_state(admin, task_id, "running")
    first.kill9()
    spawn("rescuer")
    wait_for(
        lambda: task(admin, task_id)["agent_id"] == "rescuer",
        what="the rescue",
        seen=lambda: task(admin, task_id),
    )
    history = events(admin, task_id)
    assert "task.agent_lost" in history and history.count("task.assigned") == 2


def test_a_server_restart_mid_task_loses_no_receipt(
    server: ServerProcess,
    admin: httpx.Client,
    spawn,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    spawn("runner-1")
    gate, pidfile = tmp_path / "go", tmp_path / "cli.pid"
    task_id = create(admin, "t", [], prompt=f"PIDFILE {pidfile} WAIT {gate}")["task_id"]
    wait_for_state(admin, task_id, "running")
    wait_for(lambda: pidfile.exists() and pidfile.read_text() != "", what="the CLI to start")
    server.kill9()
    gate.touch()  # the CLI ends while the server is down: the receipt waits in the outbox
    wait_for(lambda: not _alive(int(pidfile.read_text())), what="the CLI to end")
    server.start()
    wait_for_state(admin, task_id, "completed")
    assert events(admin, task_id).count("task.completed") == 1


def test_secrets_never_leave_the_agent(admin: httpx.Client, spawn) -> None:  # type: ignore[no-untyped-def]
    secret = "sk-live-0123456789abcdefXYZ"
    spawn("runner-1", env={"MY_API_TOKEN": secret})
    task_id = create(admin, "leaky", [], prompt="LEAK")["task_id"]
    wait_for_state(admin, task_id, "completed")
    log = admin.get(f"/api/v1/tasks/{task_id}/logs").text
    assert "the key is [redacted]" in log
    assert secret not in log and secret not in str(task(admin, task_id))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_workspace_is_a_clone_on_the_task_branch(
    admin: httpx.Client,
    spawn,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    import subprocess

    origin = tmp_path / "forge" / "acme" / "app.git"
    seed = tmp_path / "seed"
    subprocess.run(["git", "init", "-q", "-b", "main", str(seed)], check=True)
    (seed / "README.md").write_text("hello\n")
    git = ["git", "-C", str(seed), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "init"], check=True)
    subprocess.run(["git", "clone", "-q", "--bare", str(seed), str(origin)], check=True)

    spawn("runner-1", git_base_url=f"file://{tmp_path / 'forge'}")
    task_id = create(admin, "clone", [], prompt="LIST", repo="acme/app")["task_id"]
    wait_for_state(admin, task_id, "completed")
    log = admin.get(f"/api/v1/tasks/{task_id}/logs").text
    assert "'README.md'" in log
    assert f"head ref: refs/heads/task/{task_id}" in log


def test_sigterm_lets_the_running_task_finish(admin: httpx.Client, spawn, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    agent = spawn("runner-1", shutdown_grace=120)
    gate = tmp_path / "go"
    task_id = create(admin, "t", [], prompt=f"WAIT {gate}")["task_id"]
    wait_for_state(admin, task_id, "running")
    agent.proc.send_signal(signal.SIGTERM)  # once: a second one means "kill them now"
    gate.touch()  # its run ends only after the agent was told to stop
    assert agent.proc.wait(timeout=PATIENCE_SECS) == 0
    assert state_of(admin, task_id) == "completed"
    agents = {a["agent_id"]: a["status"] for a in admin.get("/api/v1/agents").json()["agents"]}
    assert agents["runner-1"] == "deregistered"
