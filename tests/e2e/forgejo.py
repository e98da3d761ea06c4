"""The Forgejo stand-in (tests/forgejo_standin.py) as a separate process for e2e tests."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests import processes
from tests.e2e.server import START_PATIENCE_SECS, free_port

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ForgejoStandIn:
    port: int
    token: str
    proc: subprocess.Popen[bytes]

    @classmethod
    def start(cls, token: str, log: Path, git_root: Path | None = None) -> ForgejoStandIn:
        port = free_port()
        extra = ["--git-root", str(git_root)] if git_root is not None else []
        with log.open("ab") as out:
            proc = processes.spawn(
                [
                    sys.executable,
                    "-m",
                    "tests.forgejo_standin",
                    "--port",
                    str(port),
                    "--token",
                    token,
                    *extra,
                ],
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        standin = cls(port, token, proc)
        started = time.monotonic()
        while time.monotonic() - started < START_PATIENCE_SECS and proc.poll() is None:
            try:
                standin.report()
                if processes.listens(proc.pid, port):  # not another test's stand-in
                    return standin
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        processes.kill(proc)
        raise RuntimeError(f"the Forgejo stand-in did not start: {log.read_text()}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def set(self, what: str, **data: Any) -> None:
        reply = httpx.post(f"{self.url}/_standin/{what}", json=data, timeout=30)
        assert reply.status_code == 200, reply.text

    def report(self) -> dict[str, Any]:
        reply = httpx.get(f"{self.url}/_standin/report", timeout=30)
        reply.raise_for_status()
        body: dict[str, Any] = reply.json()
        return body

    def pulls(self, repo: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.report()["pulls"].get(repo, [])
        return found

    def comments(self, repo: str, number: int) -> list[str]:
        found: list[str] = self.report()["comments"].get(f"{repo}#{number}", [])
        return found

    def stop(self) -> None:
        # Requests it holds on purpose (a scripted delay) need not be waited out.
        processes.stop(self.proc, grace_secs=5)
