"""ssh_cli end to end: a real server process places tasks on `[[hosts]]` slots and runs
the agent CLI detached, over a real sshd on loopback and as a local subprocess.

Each scenario runs for both kinds of host; the agent CLI is tests/e2e/fake_cli.py.
"""

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import PATIENCE_SECS, task, wait_for, wait_for_state
from tests.e2e.server import ADMIN_TOKEN, ServerProcess, _toml
from tests.sshd import SshServer, free_port, running

FAKE_CLI = str(Path(__file__).with_name("fake_cli.py"))
HOSTILE = "$(touch PWNED) `touch PWNED2` '\"; touch PWNED3 ; rm -rf ~ #\nsecond line \\ end"


def host_block(
    host_id: str,
    work_dir: Path,
    sshd: SshServer | None,
    *,
    slots: int = 2,
    port: int | None = None,
    caps: tuple[str, ...] = ("code",),
    agent_type: str = "fake",
) -> str:
    lines = ["[[hosts]]", f"host_id = {_toml(host_id)}", f"work_dir = {_toml(str(work_dir))}"]
    if sshd is None:
        lines.append('hostname = "localhost"')
    else:
        lines += [
            'hostname = "127.0.0.1"',
            f"ssh_port = {port or sshd.port}",
            f"ssh_user = {_toml(sshd.user)}",
            f"ssh_key_path = {_toml(str(sshd.key_path))}",
            f"known_hosts = {_toml(str(sshd.known_hosts))}",
            "connect_timeout_secs = 30",  # a starved machine is slow, not down
        ]
    cap_list = ", ".join(_toml(c) for c in caps)
    lines.append(
        f"agents = [{{agent_type = {_toml(agent_type)}, max_concurrency = {slots}, "
        f"capabilities = [{cap_list}]}}]"
    )
    return "\n".join(lines) + "\n\n"


AGENT_TYPES = f"[agent_types.fake]\ncommand = [{_toml(sys.executable)}, {_toml(FAKE_CLI)}]\n"


@pytest.fixture(params=["local", "ssh"])
def host_kind(request: pytest.FixtureRequest) -> SshServer | None:
    if request.param == "local":
        return None
    sshd: SshServer = request.getfixturevalue("sshd")
    return sshd


@pytest.fixture
def fleet(tmp_path: Path, host_kind: SshServer | None) -> Iterator[ServerProcess]:
    work = tmp_path / "runs"
    with ServerProcess(
        tmp_path,
        orchestrator={"dispatch_interval_secs": 1, "ssh_poll_interval_secs": 0.2},
        extra_toml=host_block("h1", work, host_kind) + AGENT_TYPES,
    ) as proc:
        yield proc


@pytest.fixture
def admin_of(fleet: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=fleet.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
    ) as client:
        yield client


def make(admin: httpx.Client, prompt: str, title: str = "ssh task", **extra: Any) -> str:
    reply = admin.post(
        "/api/v1/tasks",
        json={
            "title": title,
            "prompt": prompt,
            "required_capabilities": ["code"],
            "execution_mode": "ssh_cli",
            **extra,
        },
    )
    assert reply.status_code == 201, reply.text
    task_id: str = reply.json()["task_id"]
    return task_id


def state_of(admin: httpx.Client, task_id: str) -> str:
    return str(task(admin, task_id)["state"])


def event_types(admin: httpx.Client, task_id: str) -> list[str]:
    reply = admin.get(f"/api/v1/tasks/{task_id}/events")
    assert reply.status_code == 200
    return [e["type"] for e in reply.json()["events"]]


def log_text(admin: httpx.Client, task_id: str) -> str:
    reply = admin.get(f"/api/v1/tasks/{task_id}/logs")
    assert reply.status_code == 200, reply.text
    return reply.text


def test_tasks_run_on_the_host_and_hostile_text_stays_data(
    fleet: ServerProcess, admin_of: httpx.Client, tmp_path: Path
) -> None:
    hostile = make(admin_of, f"ECHO {HOSTILE}", title=HOSTILE)
    plain = make(admin_of, "RECEIPT please")
    for task_id in (hostile, plain):
        wait_for_state(admin_of, task_id, "completed", "review_pending", "failed")
    done = task(admin_of, hostile)
    assert done["state"] == "completed", done
    assert done["agent_id"] == "h1/fake"
    assert f"prompt<<ECHO {HOSTILE}>>" in log_text(admin_of, hostile)
    assert not list(tmp_path.rglob("PWNED*")), "text from the issue was executed"
    assert event_types(admin_of, hostile) == [
        "task.created",
        "task.assigned",
        "task.started",
        "task.completed",
    ]
    # The CLI's own receipt file wins over its exit status: it names a PR.
    receipted = task(admin_of, plain)
    assert receipted["state"] == "review_pending"
    assert receipted["receipt"]["summary"] == "opened a pull request"
    assert receipted["receipt"]["usage"]["tokens"] == 321
    # Completed workspaces are kept (marked, for keep_completed_workspaces_hours).
    marked = lambda: list((tmp_path / "runs").glob("*/attempt-*/meta/completed"))  # noqa: E731
    wait_for(lambda: len(marked()) == 2, what="completed workspaces marked", seen=marked)


def test_a_receipt_the_cli_posts_itself_wins_over_its_exit_status(
    fleet: ServerProcess, admin_of: httpx.Client
) -> None:
    task_id = make(admin_of, "POST then exit 1")
    body = wait_for_state(admin_of, task_id, "completed")
    assert body["receipt"]["summary"] == "posted by the CLI itself"
    assert body["attempt"] == 0
    wait_for(
        lambda: "receipt posted: 200" in log_text(admin_of, task_id),
        what="the log shipped",
        seen=lambda: log_text(admin_of, task_id)[-500:],
    )
    # The lease is a credential: it never shows in the task's log or receipt.
    assert body["receipt"].get("lease") is None or body["receipt"]["lease"] not in log_text(
        admin_of, task_id
    )


def test_a_run_that_prints_its_lease_keeps_every_later_line_with_the_lease_redacted(
    fleet: ServerProcess, admin_of: httpx.Client
) -> None:
    """Issue 14, finding 6: redaction shortened a chunk, and every later one was dropped."""
    task_id = make(admin_of, "LEASE SLEEP 1.6")
    wait_for(lambda: state_of(admin_of, task_id) == "completed", PATIENCE_SECS, "completed")
    wait_for(lambda: "all done" in log_text(admin_of, task_id), PATIENCE_SECS, "the whole log")
    output = log_text(admin_of, task_id)
    assert "lease=[redacted]" in output
    assert re.search(r"[0-9a-f]{32}", output) is None  # a lease is 32 hex digits
    steps = [line for line in output.splitlines() if line.startswith("working step")]
    assert steps == [f"working step {n}" for n in range(len(steps))] and len(steps) >= 5
    assert output.rstrip().endswith("all done")


def test_a_task_with_a_repo_runs_in_a_clone_on_its_branch(
    tmp_path: Path, host_kind: SshServer | None
) -> None:
    origin = tmp_path / "git" / "acme" / "widgets.git"
    seed = tmp_path / "seed"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], check=True)
    subprocess.run(["git", "init", "-q", str(seed)], check=True)
    (seed / "README.md").write_text("widgets\n")
    git = ["git", "-C", str(seed), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "seed"], check=True)
    subprocess.run([*git, "push", "-q", str(origin), "HEAD:refs/heads/main"], check=True)
    with (
        ServerProcess(
            tmp_path,
            orchestrator={"dispatch_interval_secs": 1, "ssh_poll_interval_secs": 0.2},
            forgejo={"url": f"file://{tmp_path / 'git'}"},
            extra_toml=host_block("h1", tmp_path / "runs", host_kind) + AGENT_TYPES,
        ) as proc,
        httpx.Client(
            base_url=proc.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
        ) as admin,
    ):
        task_id = make(admin, "LIST", repo="acme/widgets")
        wait_for_state(admin, task_id, "completed")
        output = log_text(admin, task_id)
    assert "README.md" in output
    assert f"head ref: refs/heads/task/{task_id}" in output


def test_a_failing_cli_fails_the_task_with_its_exit_code_and_retries(
    fleet: ServerProcess, admin_of: httpx.Client, tmp_path: Path
) -> None:
    task_id = make(admin_of, "FAIL now", max_retries=2)
    body = wait_for_state(admin_of, task_id, "failed")
    assert body["attempt"] == 2
    assert body["failure"]["reason"] == "error"
    assert "exit code 3" in body["failure"]["message"]
    # Failed workspaces are kept for inspection.
    assert sorted(p.name for p in (tmp_path / "runs").glob("*/attempt-*")) == [
        "attempt-0",
        "attempt-1",
        "attempt-2",
    ]


def test_cancel_kills_the_running_process_group(
    fleet: ServerProcess, admin_of: httpx.Client, tmp_path: Path
) -> None:
    pid_file = tmp_path / "cli.pid"
    task_id = make(admin_of, f"SLEEP 120 PIDFILE {pid_file}")
    pid = _pid_of_cli(pid_file)
    wait_for(lambda: "working step" in log_text(admin_of, task_id), what="live log while it runs")
    reply = admin_of.post(f"/api/v1/tasks/{task_id}/cancel", json={"reason": "not needed"})
    assert reply.status_code == 200, reply.text
    wait_for(lambda: not running(pid), what="the CLI killed (it sleeps 120 s otherwise)")
    assert state_of(admin_of, task_id) == "cancelled"


def test_timeout_kills_the_process_and_records_the_reason(
    fleet: ServerProcess, admin_of: httpx.Client, tmp_path: Path
) -> None:
    pid_file = tmp_path / "cli.pid"
    task_id = make(admin_of, f"SLEEP 120 PIDFILE {pid_file}", timeout_secs=3, max_retries=0)
    pid = _pid_of_cli(pid_file)
    failed = wait_for_state(admin_of, task_id, "failed")
    assert failed["failure"]["reason"] == "timeout"
    wait_for(lambda: not running(pid), what="the CLI killed (it sleeps 120 s otherwise)")


def test_a_server_killed_mid_run_reattaches_and_records_each_result_once(
    fleet: ServerProcess, admin_of: httpx.Client, tmp_path: Path
) -> None:
    short_gate, long_gate = tmp_path / "short.go", tmp_path / "long.go"
    ends_while_down = make(admin_of, f"WAIT {short_gate} ECHO short")
    still_running = make(admin_of, f"WAIT {long_gate} ECHO long")
    for task_id in (ends_while_down, still_running):
        wait_for_state(admin_of, task_id, "running")
    fleet.kill9()
    short_gate.touch()  # the short run ends while nobody watches
    exit_file = tmp_path / "runs" / ends_while_down / "attempt-0" / "meta" / "exit"
    wait_for(exit_file.exists, what="the short run to end while the server is down")
    fleet.start()
    wait_for_state(admin_of, ends_while_down, "completed")
    assert state_of(admin_of, still_running) == "running"  # re-attached, still going
    long_gate.touch()
    for task_id in (ends_while_down, still_running):
        wait_for_state(admin_of, task_id, "completed")
        types = event_types(admin_of, task_id)
        assert types.count("task.completed") == 1, types
        assert types.count("task.started") == 1, types
        assert "task.agent_lost" not in types, types
        assert task(admin_of, task_id)["attempt"] == 0  # the first attempt, not a retry
        assert "all done" in log_text(admin_of, task_id)


def test_a_host_that_refuses_connections_loses_no_task(tmp_path: Path, sshd: SshServer) -> None:
    closed_port = free_port()
    extra = (
        host_block("down", tmp_path / "down", sshd, port=closed_port, slots=4)
        + host_block("up", tmp_path / "up", None, slots=2)
        + AGENT_TYPES
    )
    with (
        ServerProcess(
            tmp_path,
            orchestrator={
                "dispatch_interval_secs": 1,
                "ssh_poll_interval_secs": 0.2,
                "default_max_retries": 5,
            },
            extra_toml=extra,
        ) as proc,
        httpx.Client(
            base_url=proc.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
        ) as admin,
    ):
        ids = [make(admin, f"ECHO task {n}") for n in range(4)]
        for task_id in ids:
            wait_for_state(admin, task_id, "completed")
        histories = {t: event_types(admin, t) for t in ids}
        bodies = {t: task(admin, t) for t in ids}
    assert all(h.count("task.completed") == 1 for h in histories.values()), histories
    assert all(b["agent_id"] == "up/fake" for b in bodies.values())
    # The down host was tried and marked down (with backoff), not given work blindly.
    server_log = proc.log_path.read_text()
    assert "host down" in server_log and "down" in server_log


def _pid_of_cli(pid_file: Path) -> int:
    """The pid the stand-in CLI wrote once it started."""
    wait_for(lambda: pid_file.exists() and pid_file.read_text() != "", what="the CLI to start")
    return int(pid_file.read_text())
