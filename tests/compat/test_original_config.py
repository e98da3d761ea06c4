"""The original's config.toml (tests/fixtures/original) is checked and served as it is;
with one more line, `agent_auth = "original"`, the original's quick start runs against it."""

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.compat.original_client import OriginalAgent, OriginalOperator
from tests.e2e.helpers import task, wait_for
from tests.e2e.server import ADMIN_TOKEN, ServerProcess, _toml
from tests.paths import FIXTURES

ORIGINAL_CONFIG = FIXTURES / "original" / "config.toml"
#: The fixture's shared token: the original's agents send it on dequeue and status.
FIXTURE_PULL_TOKEN = "http-pull-token-placeholder-0001"


class OriginalConfigServer(ServerProcess):
    """`agent-fleet serve --config <the original's file>`; only the listen address comes
    from the command line (the file binds 0.0.0.0:9090, which a test may not take)."""

    def __init__(self, workdir: Path, config_text: str) -> None:
        super().__init__(workdir)
        self.config_text = config_text

    def write_config(self) -> None:
        self.config_path.write_text(self.config_text)

    def start(self) -> "OriginalConfigServer":  # the listen address from the command line
        self.write_config()
        argv = [sys.executable, "-m", "agent_fleet", "serve", "--config", str(self.config_path)]
        argv += ["--bind", "127.0.0.1", "--port", str(self.port)]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir, env=_env()
            )
        self._wait_healthy()
        return self


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("AGENT_FLEET_")}


def _with_original_auth(text: str) -> str:
    """The fixture with the one line a user of the original adds."""
    assert text.count("[orchestrator]\n") == 1
    return text.replace("[orchestrator]\n", '[orchestrator]\nagent_auth = "original"\n')


def test_config_check_accepts_the_original_file_and_says_how_adapters_run(
    tmp_path: Path,
) -> None:
    shutil.copy(ORIGINAL_CONFIG, tmp_path / "config.toml")
    done = subprocess.run(
        [sys.executable, "-m", "agent_fleet", "config", "check", "--config", "config.toml"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=_env(),
    )
    assert done.returncode == 0, done.stderr
    assert "config.toml: OK" in done.stdout
    assert "unknown key" not in done.stderr  # every key of the original is a key here
    assert "adapters.codex-cli: the original's built-in template" in done.stderr
    assert "adapters.opencode: runs as the argv opencode run '{prompt_file}'" in done.stderr
    assert 'command = ["opencode", "run", "{prompt_file}"]' in done.stdout
    assert "forgejo-bot-token-placeholder" not in done.stdout + done.stderr  # secrets redacted


@pytest.fixture
def served_as_is(tmp_path: Path) -> Iterator[OriginalConfigServer]:
    server = OriginalConfigServer(tmp_path, ORIGINAL_CONFIG.read_text())
    try:
        yield server.start()
    finally:
        server.stop()


def test_the_original_file_serves_and_refusals_name_the_setting(
    served_as_is: OriginalConfigServer,
) -> None:
    health = httpx.get(f"{served_as_is.url}/healthz", timeout=10)
    assert health.status_code == 200  # the original's check looks at the status only
    assert (served_as_is.workdir / "agent-fleet.db").exists()  # db_path, relative to the cwd
    agent = OriginalAgent(served_as_is.url, "jeeves", FIXTURE_PULL_TOKEN)
    try:
        refused = agent.register(["docs"])
    finally:
        agent.close()
    assert refused.status_code == 401  # the strict default: register wants a token
    assert 'agent_auth = "original"' in refused.json()["error"]


@pytest.fixture
def served_with_original_auth(tmp_path: Path) -> Iterator[OriginalConfigServer]:
    server = OriginalConfigServer(tmp_path, _with_original_auth(ORIGINAL_CONFIG.read_text()))
    try:
        yield server.start()
    finally:
        server.stop()


def test_with_one_line_the_original_quick_start_runs(
    served_with_original_auth: OriginalConfigServer,
) -> None:
    url = served_with_original_auth.url
    agent = OriginalAgent(url, "jeeves", FIXTURE_PULL_TOKEN)
    operator = OriginalOperator(url)
    try:
        registered = agent.register(["docs"], max_concurrency=2)
        assert registered.status_code == 200, registered.text
        assert registered.json()["registry_token"]  # the quick start tells agents to save it
        assert agent.heartbeat().status_code == 200
        # "docs": no [[hosts]] agent has it, so no host takes the task: the pull agent does.
        created = operator.create("Write the changelog", ["docs"])
        task = agent.dequeue(["docs"])
        assert task is not None and task["task_id"] == created["task_id"]
        assert task["status"] == "assigned" and task["assigned_agent_id"] == "jeeves"
        assert agent.status(task["task_id"], "running").status_code == 200
        receipt = agent.receipt(task["task_id"], "completed", [])
        assert agent.complete(task["task_id"], receipt)["status"] == "completed"
    finally:
        agent.close()
        operator.close()


ORIGINAL_CLI = Path(__file__).with_name("original_cli.py")
HOSTILE = "$(touch PWNED) `touch PWNED2` '\"; touch PWNED3 ; rm -rf ~ #"


def test_a_custom_template_of_the_original_runs_on_a_host(tmp_path: Path) -> None:
    """`'{prompt}'` in the original's template: the CLI gets the prompt file's path there,
    the prompt on stdin, and no text of the issue ever reaches a command line or a shell."""
    template = (
        f"{shlex.quote(sys.executable)} {shlex.quote(str(ORIGINAL_CLI))} "
        "--prompt '{prompt}' --in {repo_path}"
    )
    extra = "\n".join(
        [
            "[[hosts]]",
            'host_id = "wsl2"',
            'hostname = "localhost"',
            f"work_dir = {_toml(str(tmp_path / 'runs'))}",
            'agents = [{ agent_type = "mycli", max_concurrency = 1, capabilities = ["code:go"] }]',
            "",
            "[adapters.mycli]",
            f"cli_template = {_toml(template)}",
            'output_parser = "raw"',
            "",
        ]
    )
    server = ServerProcess(
        tmp_path,
        orchestrator={"dispatch_interval_secs": 1, "ssh_poll_interval_secs": 0.2},
        extra_toml=extra,
    )
    try:
        server.start()
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
        ) as admin:
            body = {
                "title": "go",
                "prompt": f"Fix it {HOSTILE}",
                "required_capabilities": ["code:go"],
            }
            created = admin.post("/api/v1/tasks", json=body)
            assert created.status_code == 201, created.text
            task_id = created.json()["task_id"]
            wait_for(
                lambda: task(admin, task_id)["status"] in ("completed", "failed"),
                60,
                "the host's run to end",
            )
            log = admin.get(f"/api/v1/tasks/{task_id}/logs").text
            done = task(admin, task_id)
    finally:
        server.stop()
    assert done["status"] == "completed", (done, log)
    assert done["assigned_host"] == "wsl2" and done["execution_mode"] == "ssh_cli"
    assert f"prompt<<Fix it {HOSTILE}>>" in log
    argv_line = next(line for line in log.splitlines() if line.startswith("argv<<"))
    assert "Fix it" not in argv_line  # the prompt is a file, never an argument
    assert not list(tmp_path.rglob("PWNED*")), "text from the issue was executed"
