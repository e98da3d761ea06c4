"""The real Claude Code, Codex and aider binaries under `agent-fleet serve` +
`agent-fleet agent`, against the stand-in model server: a task completes with the file
the model asked for, the model's final message as summary and usage parsed; a model
that is down and a model that refuses the key both end the task `failed` in bounded
time, with the CLI's own message (Codex, which retries an absent model for ever, through
stall detection)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.clis.conftest import CODEX_IDLE_SECS, KEY, WRONG_KEY, ModelServer, Spawn
from tests.clis.install import PINS
from tests.clis.standin_script import FILE_NAME, FILE_TEXT, FINAL_TEXT, USAGE
from tests.e2e.agents import AgentProcess
from tests.e2e.helpers import create, task
from tests.e2e.server import ADMIN_TOKEN, ServerProcess

CLIS = ["claude", "codex", "aider"]
#: Claude retries an absent or refusing model ~3 min before it gives up; aider ~75 s.
FAILURE_BOUND_SECS = 420


@pytest.fixture
def admin(fleet: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=fleet.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
    ) as client:
        yield client


def wait_for_task(
    admin: httpx.Client,
    task_id: str,
    done: Callable[[dict[str, Any]], bool],
    timeout: float,
    agents: list[AgentProcess],
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = task(admin, task_id)
        if done(body):
            return body
        for agent in agents:
            if agent.proc.poll() is not None:
                raise AssertionError(f"the agent exited early:\n{agent.output()[-3000:]}")
        time.sleep(0.5)
    logs = "\n".join(agent.output()[-3000:] for agent in agents)
    raise AssertionError(f"task {task_id} stayed {body.get('state')}:\n{body}\n{logs}")


def workspace_file(tmp_path: Path, agent_id: str, task_id: str) -> Path:
    return tmp_path / agent_id / "work" / task_id / "attempt-0" / "work" / FILE_NAME


@pytest.mark.timeout(600)
@pytest.mark.parametrize("cli", CLIS)
def test_a_task_completes_with_the_file_the_summary_and_usage(
    cli: str,
    model: ModelServer,
    fleet: ServerProcess,
    admin: httpx.Client,
    spawn_agent: Spawn,
    tmp_path: Path,
) -> None:
    agent = spawn_agent(cli, f"{cli}-ok", f"cli:{cli}", url=model.url, key=KEY)
    task_id = create(
        admin, f"{cli} writes a file", [f"cli:{cli}"], prompt="Create the greeting file."
    )["task_id"]
    body = wait_for_task(
        admin, task_id, lambda t: t["state"] in ("completed", "failed"), 300, [agent]
    )
    assert body["state"] == "completed", body
    receipt = body["receipt"]
    assert receipt["summary"].splitlines()[0] == FINAL_TEXT
    # The workspace of a completed task is kept (keep_completed_workspaces_hours).
    assert workspace_file(tmp_path, f"{cli}-ok", task_id).read_text().strip() == FILE_TEXT.strip()
    usage = receipt["usage"]
    # Per model call the stand-in reports 1200 fresh input tokens (and 500 cached: inside
    # OpenAI's input count, beside Anthropic's).
    per_call = USAGE["input"] + (USAGE["cache_read"] if cli == "codex" else 0)
    assert usage["input_tokens"] > 0 and usage["input_tokens"] % per_call == 0
    assert usage["output_tokens"] > 0 and usage["output_tokens"] % USAGE["output"] == 0
    assert usage["tokens"] == usage["input_tokens"] + usage["output_tokens"]
    if cli == "claude":
        assert usage["cache_read_tokens"] % USAGE["cache_read"] == 0
        assert usage["cache_write_tokens"] % USAGE["cache_write"] == 0
        assert usage["cost_usd"] > 0
    if cli == "codex":
        assert usage["cache_read_tokens"] % USAGE["cache_read"] == 0
        assert usage["cost_usd"] is None
    # The agent found its CLI, and registered its version.
    agents = admin.get("/api/v1/agents").json()["agents"]
    metadata = next(a for a in agents if a["agent_id"] == f"{cli}-ok")["metadata"]
    assert PINS[cli].version in metadata["cli_version"]
    assert metadata["cli_version"] in admin.get("/ui/agents").text  # on the dashboard


@pytest.mark.timeout(FAILURE_BOUND_SECS + 180)
@pytest.mark.parametrize("cli", CLIS)
def test_a_model_that_is_down_or_refuses_the_key_fails_the_task(
    cli: str,
    model: ModelServer,
    down_url: str,
    fleet: ServerProcess,
    admin: httpx.Client,
    spawn_agent: Spawn,
) -> None:
    # Both at once (each CLI retries a while before it gives up): two agents, two tasks.
    down_agent = spawn_agent(cli, f"{cli}-down", f"down:{cli}", url=down_url, key=KEY)
    refused_agent = spawn_agent(cli, f"{cli}-401", f"refused:{cli}", url=model.url, key=WRONG_KEY)
    down = create(admin, "model down", [f"down:{cli}"], max_retries=0)["task_id"]
    refused = create(admin, "wrong key", [f"refused:{cli}"], max_retries=0)["task_id"]
    agents = [down_agent, refused_agent]
    started = time.monotonic()
    ended = lambda t: t["state"] in ("completed", "failed")  # noqa: E731
    down_body = wait_for_task(admin, down, ended, FAILURE_BOUND_SECS, agents)
    refused_body = wait_for_task(admin, refused, ended, FAILURE_BOUND_SECS, agents)
    elapsed = time.monotonic() - started
    assert down_body["state"] == "failed", down_body
    assert refused_body["state"] == "failed", refused_body
    down_failure, refused_failure = down_body["failure"], refused_body["failure"]
    expected_down = {
        "claude": ("error", "API Error: Unable to connect to API (ConnectionRefused)"),
        "codex": ("stalled", f"no progress for {CODEX_IDLE_SECS} s"),
        "aider": ("error", "litellm.InternalServerError"),
    }[cli]
    assert down_failure["reason"] == expected_down[0], down_failure
    assert expected_down[1] in down_failure["message"], down_failure
    expected_refused = {
        "claude": "Invalid API key",
        "codex": "401 Unauthorized: Incorrect API key provided",
        "aider": "litellm.AuthenticationError",
    }[cli]
    assert refused_failure["reason"] == "error", refused_failure
    assert expected_refused in refused_failure["message"], refused_failure
    assert "exit code" not in refused_failure["message"]  # the CLI's words, not raw output
    assert elapsed < FAILURE_BOUND_SECS
