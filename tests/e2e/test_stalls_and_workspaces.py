"""The pull runner with the stand-in CLI: a silent run stalls (stopped, failed `stalled`,
retried), and a completed task's workspace is kept or removed as configured. The agent
reads both settings from the file given to `--config`."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.agents import FAKE_CLI, AgentProcess
from tests.e2e.helpers import PATIENCE_SECS, create, task, wait_for
from tests.e2e.server import ADMIN_TOKEN, PULL_TOKEN, ServerProcess

Start = Callable[..., tuple[ServerProcess, httpx.Client, AgentProcess]]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    started: list[tuple[ServerProcess, httpx.Client, AgentProcess]] = []

    def _start(
        extra_toml: str, **orchestrator: object
    ) -> tuple[ServerProcess, httpx.Client, AgentProcess]:
        server = ServerProcess(tmp_path / "server", orchestrator=dict(orchestrator))
        server.extra_toml = extra_toml
        server.workdir.mkdir()
        server.start()
        admin = httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
        )
        log_path = tmp_path / "agent.log"
        argv = [
            sys.executable, "-m", "agent_fleet", "agent", "--config", str(server.config_path),
            "--server", server.url, "--token", PULL_TOKEN, "--agent-id", "quiet-1",
            "--agent-type", "stand-in", "--work-dir", str(tmp_path / "work"),
            "--shutdown-grace", "5",
        ]  # fmt: skip
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_FLEET_")}
        with log_path.open("ab") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        started.append((server, admin, AgentProcess(proc, log_path)))
        return started[-1]

    yield _start
    for server, admin, agent in started:
        agent.stop()
        admin.close()
        server.stop()


STAND_IN = (
    f'[agent_types.stand-in]\ncommand = ["{sys.executable}", "{FAKE_CLI}", "{{prompt_file}}"]\n'
)


def test_a_silent_run_stalls_and_is_retried(start: Start) -> None:
    _, admin, agent = start(STAND_IN + "idle_timeout_secs = 2\n", default_max_retries=1)
    task_id = create(admin, "hangs", [], prompt="HANG 120")["task_id"]
    began = time.monotonic()
    wait_for(lambda: task(admin, task_id)["attempt"] == 1, 60, "the retry after a stall")
    assert time.monotonic() - began < 60  # far sooner than the 120 s it meant to hang
    events = admin.get(f"/api/v1/tasks/{task_id}/events").json()["events"]
    failed = [e for e in events if e["type"] == "task.failed"]
    assert failed and failed[0]["data"]["reason"] == "stalled", failed
    assert "no progress for 2 s" in failed[0]["data"]["message"]
    log = admin.get(f"/api/v1/tasks/{task_id}/logs", params={"attempt": 0}).text
    assert "[agent-fleet] no progress for 2 s: stopped" in log
    assert agent.proc.poll() is None  # the agent itself goes on


@pytest.mark.parametrize(("hours", "kept"), [(24, True), (0, False)])
def test_a_completed_workspace_is_kept_as_configured(
    start: Start, tmp_path: Path, hours: int, kept: bool
) -> None:
    _, admin, _ = start(STAND_IN, keep_completed_workspaces_hours=hours)
    task_id = create(admin, "quick", [], prompt="done quickly")["task_id"]
    wait_for(lambda: task(admin, task_id)["state"] == "completed", PATIENCE_SECS, "completed")
    attempt = tmp_path / "work" / task_id / "attempt-0"
    wait_for(lambda: attempt.exists() == kept, PATIENCE_SECS, f"workspace kept={kept}")
    if kept:
        assert (attempt / "meta" / "completed").exists()


def test_a_silent_run_on_an_ssh_cli_host_stalls(tmp_path: Path) -> None:
    """The same rule in push mode: the server watches the run's log on the host."""
    from tests.e2e.test_ssh_cli import AGENT_TYPES, host_block, make

    server = ServerProcess(
        tmp_path,
        orchestrator={
            "dispatch_interval_secs": 1,
            "ssh_poll_interval_secs": 0.2,
            "default_max_retries": 0,
        },
        extra_toml=host_block("h1", tmp_path / "runs", None)
        + AGENT_TYPES
        + "idle_timeout_secs = 2\n",
    ).start()
    try:
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
        ) as admin:
            task_id = make(admin, "HANG 120")
            wait_for(lambda: task(admin, task_id)["state"] == "failed", 60, "stalled")
            failure = task(admin, task_id)["failure"]
            assert failure["reason"] == "stalled", failure
            assert "no progress for" in failure["message"]
            # The run was stopped, not left hanging for its two minutes.
            wait_for(
                lambda: bool(list((tmp_path / "runs").glob("*/attempt-0/meta/exit"))),
                30,
                "the run's exit recorded",
            )
    finally:
        server.stop()
