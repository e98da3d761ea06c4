"""A real `agent-fleet serve` process on a free loopback port, for end-to-end tests.

Use it as a context manager (`with ServerProcess(tmp_path, ...) as server:`) or through
a fixture that calls `stop()`: either way it stops when the test ends, whatever happens
in it (and tests/processes.py kills it should both be skipped).
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from tests import processes

ADMIN_TOKEN = "admin-secret-e2e-7f3a"
PULL_TOKEN = "pull-secret-e2e-91bc"
#: Start-up takes a second on an idle machine; a starved one may need many more.
START_PATIENCE_SECS = 90.0
#: A graceful stop drains requests and background duties: generous, then SIGKILL.
STOP_PATIENCE_SECS = 60.0
PORT_TRIES = 3


class PortTaken(Exception):
    """The server could not bind its port: another process took it first."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    workdir: Path
    orchestrator: dict[str, Any] = field(default_factory=dict)
    forgejo: dict[str, Any] = field(default_factory=dict)
    server: dict[str, Any] = field(default_factory=dict)  # over [server]; None drops a key
    nofile: int | None = None  # the server's open-files limit (soft and hard), as systemd sets
    extra_toml: str = ""  # appended as is: [[hosts]], [agent_types.*]
    env: dict[str, str] = field(default_factory=dict)  # over the test's environment
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    _log_start: int = 0  # where this start's part of the log begins

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def db_path(self) -> Path:
        return self.workdir / "fleet.db"

    @property
    def config_path(self) -> Path:
        return self.workdir / "config.toml"

    @property
    def log_path(self) -> Path:
        return self.workdir / "server.log"

    def write_config(self) -> None:
        orchestrator = {
            "db_path": str(self.db_path),
            # An agent is lost after 30 s of silence: on a starved machine a test's agent
            # that never beats may wait that long between requests. Tests that wait for a
            # loss ask for less (`@pytest.mark.orchestrator(...)`) and keep the others beating.
            "heartbeat_interval_secs": 1,
            "heartbeat_timeout_threshold": 30,
            "task_timeout_secs": 60,
            "default_max_retries": 2,
            "http_pull_token": PULL_TOKEN,
            "retry_backoff_base_secs": 0,
            "sweep_interval_secs": 0.2,
            **self.orchestrator,
        }
        server = {"bind": "127.0.0.1", "port": self.port, "admin_token": ADMIN_TOKEN, **self.server}
        lines = ["[server]"]
        lines += [f"{key} = {_toml(value)}" for key, value in server.items() if value is not None]
        lines += ["", "[orchestrator]"]
        for key, value in orchestrator.items():
            if value is not None:  # None: leave the key out (e.g. no http_pull_token)
                lines.append(f"{key} = {_toml(value)}")
        if self.forgejo:
            lines.append("[forgejo]")
            lines += [f"{key} = {_toml(value)}" for key, value in self.forgejo.items()]
        self.config_path.write_text("\n".join(lines) + "\n" + self.extra_toml)

    def start(self) -> ServerProcess:
        # Another test's process may take the port between free_port() and our bind: then
        # this server exits at once, and it starts again on another port.
        for _ in range(PORT_TRIES - 1):
            try:
                return self._start()
            except PortTaken:
                self.port = free_port()
        return self._start()

    def _start(self) -> ServerProcess:
        self.write_config()
        self._log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_FLEET_")}
        env.update(self.env)
        with self.log_path.open("ab") as log:
            self.proc = processes.spawn(
                [sys.executable, "-m", "agent_fleet", "serve", "--config", str(self.config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.workdir,
                preexec_fn=self._limit_files if self.nofile else None,
            )
        try:
            self._wait_healthy()
        except BaseException:
            processes.kill(self.proc)  # a server that never came up is not left running
            raise
        return self

    def _limit_files(self) -> None:
        assert self.nofile is not None
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))

    def __enter__(self) -> ServerProcess:
        return self if self.proc is not None and self.proc.poll() is None else self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _wait_healthy(self) -> None:
        started = time.monotonic()
        seen = "no answer yet"
        while time.monotonic() - started < START_PATIENCE_SECS:
            assert self.proc is not None
            if self.proc.poll() is not None:
                log = self.log_path.read_bytes()[self._log_start :].decode(errors="replace")
                if "address already in use" in log.lower():
                    raise PortTaken(self.port)
                raise RuntimeError(f"server exited early:\n{log}")
            try:
                reply = httpx.get(f"{self.url}/healthz", timeout=5)
                # The answer must come from this process: a server of another test that
                # took the port first answers too, and would stand in for ours.
                if reply.status_code == 200 and processes.listens(self.proc.pid, self.port):
                    return
                seen = f"{reply.status_code} {reply.text[:200]}"
            except httpx.HTTPError as e:
                seen = repr(e)
            time.sleep(0.05)
        raise RuntimeError(
            f"server not healthy after {START_PATIENCE_SECS:.0f}s (last: {seen}):\n"
            + self.log_path.read_text()
        )

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> int:
        """SIGTERM and wait: the graceful path (SIGKILL, and an error, if it hangs)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        code = processes.stop(self.proc, STOP_PATIENCE_SECS)
        if code == -signal.SIGKILL:
            raise AssertionError(f"server ignored SIGTERM for {STOP_PATIENCE_SECS:.0f}s")
        return code

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "agent_fleet", *args],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=self.workdir,
        )


def _toml(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
