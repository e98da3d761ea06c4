"""Real `agent-fleet agent` processes running the stand-in CLI, for end-to-end tests."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests import processes
from tests.e2e.server import PULL_TOKEN, ServerProcess

FAKE_CLI = Path(__file__).with_name("fake_cli.py")


@dataclass
class AgentProcess:
    proc: subprocess.Popen[bytes]
    log_path: Path

    def kill9(self) -> None:
        processes.kill(self.proc)

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM (it finishes its runs, up to its shutdown grace), then SIGKILL."""
        return processes.stop(self.proc, timeout)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_agent(
    server: ServerProcess,
    agent_id: str,
    work_dir: Path,
    *,
    capabilities: tuple[str, ...] = (),
    slots: int = 1,
    env: dict[str, str] | None = None,
    git_base_url: str | None = None,
    token: str | None = PULL_TOKEN,
    extra_args: tuple[str, ...] = (),
    shutdown_grace: float = 5,
) -> AgentProcess:
    work_dir.parent.mkdir(parents=True, exist_ok=True)
    log_path = work_dir.parent / f"{agent_id}.log"
    argv = [
        sys.executable,
        "-m",
        "agent_fleet",
        "agent",
        "--server",
        server.url,
        *(["--token", token] if token else []),
        "--agent-id",
        agent_id,
        "--agent-type",
        "stand-in",
        "--max-concurrency",
        str(slots),
        "--work-dir",
        str(work_dir),
        "--shutdown-grace",
        str(shutdown_grace),
    ]
    if git_base_url:
        argv += ["--git-base-url", git_base_url]
    for cap in capabilities:
        argv += ["--capability", cap]
    argv += extra_args
    argv += ["--", sys.executable, str(FAKE_CLI), "{prompt_file}"]
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_FLEET_")}
    full_env.update(env or {})
    with log_path.open("ab") as log:
        proc = processes.spawn(argv, stdout=log, stderr=subprocess.STDOUT, env=full_env)
    return AgentProcess(proc, log_path)
