"""Fixtures of the real-CLI tier: the pinned CLIs (installed once into a cache folder),
the stand-in model server, a real `agent-fleet serve`, and `agent-fleet agent` processes
running a real CLI with nothing in their environment but PATH, HOME and the model's
address and key (as root, the way most servers and containers run them)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests import processes
from tests.clis import recipes
from tests.clis.install import PINS, Unreachable, ensure
from tests.e2e.agents import AgentProcess
from tests.e2e.server import PULL_TOKEN, ServerProcess, free_port

MODEL = "standin-model"
KEY = "sk-standin-6d1f"
WRONG_KEY = "sk-wrong-key-00"
#: Codex retries an absent model for ever: its stall limit here is short.
CODEX_IDLE_SECS = 20


@dataclass(frozen=True)
class ModelServer:
    url: str  # e.g. http://127.0.0.1:PORT (the Anthropic base; OpenAI's is url + "/v1")

    def requests(self) -> list[dict[str, object]]:
        reply = httpx.get(f"{self.url}/_standin/requests", timeout=10)
        reply.raise_for_status()
        recorded: list[dict[str, object]] = reply.json()
        return recorded


def installed(cli: str) -> Path:
    """The CLI's bin folder; the test skips (saying why) when its registry is out of reach."""
    try:
        return ensure(PINS[cli])
    except Unreachable as e:
        pytest.skip(f"{cli} {PINS[cli].version} cannot be installed: {e}")


@pytest.fixture(scope="session")
def model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelServer]:
    port = free_port()
    log = tmp_path_factory.mktemp("model") / "standin.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.clis.model_standin", "--port", str(port), "--key", KEY],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = ModelServer(f"http://127.0.0.1:{port}")
    try:
        _wait_up(server, proc, port, log)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_up(server: ModelServer, proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"stand-in exited:\n{log.read_text()}")
        try:
            server.requests()
            if processes.listens(proc.pid, port):  # not another run's stand-in
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"stand-in did not start:\n{log.read_text()}")


@pytest.fixture
def down_url() -> Iterator[str]:
    """A model address that refuses connections: a bound port nobody listens on (kept
    bound, so nothing else can take it during the test)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(
        tmp_path / "server",
        orchestrator={"default_max_retries": 0, "task_timeout_secs": 900},
        extra_toml=f"\n[agent_types.codex]\nidle_timeout_secs = {CODEX_IDLE_SECS}\n",
    )
    server.workdir.mkdir()
    server.start()
    yield server
    server.stop()


Spawn = Callable[..., AgentProcess]


@pytest.fixture
def spawn_agent(fleet: ServerProcess, tmp_path: Path) -> Iterator[Spawn]:
    """Start `agent-fleet agent --agent-type <cli>` with the guide's recipe for the CLI,
    pointed at `url` with `key` (and `extra_args`, e.g. `--git-base-url`); every agent is
    stopped at the end."""
    started: list[AgentProcess] = []

    def spawn(
        cli: str,
        agent_id: str,
        capability: str,
        *,
        url: str,
        key: str,
        extra_args: tuple[str, ...] = (),
    ) -> AgentProcess:
        bins = installed(cli)
        home = tmp_path / agent_id / "home"
        home.mkdir(parents=True)
        env = {
            "PATH": f"{bins}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(home),
            **_recipe_for(cli, home, url=url, key=key),
        }
        log_path = tmp_path / agent_id / "agent.log"
        argv = [
            sys.executable, "-m", "agent_fleet", "agent",
            "--config", str(fleet.config_path),
            "--server", fleet.url,
            "--token", PULL_TOKEN,
            "--agent-id", agent_id,
            "--agent-type", cli,
            "--capability", capability,
            "--work-dir", str(tmp_path / agent_id / "work"),
            "--shutdown-grace", "5",
            *extra_args,
        ]  # fmt: skip
        with log_path.open("ab") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
        agent = AgentProcess(proc, log_path)
        started.append(agent)
        return agent

    yield spawn
    for agent in started:
        agent.stop(timeout=30)


def _recipe_for(cli: str, home: Path, *, url: str, key: str) -> dict[str, str]:
    """Write the CLI's config files as the guide says; the environment it says to set."""
    if cli == "claude":
        return recipes.exported("claude-env", url=url, model=MODEL, key=key)
    if cli == "codex":
        (home / ".codex").mkdir()
        config = recipes.recipe("codex-config", url=url, model=MODEL, key=key)
        (home / ".codex" / "config.toml").write_text(config)
        return recipes.exported("codex-env", url=url, model=MODEL, key=key)
    (home / ".aider.conf.yml").write_text(
        recipes.recipe("aider-config", url=url, model=MODEL, key=key)
    )
    return recipes.exported("aider-env", url=url, model=MODEL, key=key)
