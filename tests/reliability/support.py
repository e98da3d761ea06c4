"""Shared pieces of the reliability suite: chaos agents and the event-log audit."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests import processes
from tests.e2e.server import PULL_TOKEN, ServerProcess

CHAOS_AGENT = Path(__file__).with_name("chaos_agent.py")
#: How long an agent may take to finish and report (it retries a dead server for 60 s).
REPORT_PATIENCE_SECS = 180.0


@dataclass
class ChaosAgent:
    """One `chaos_agent.py` process; its JSON report is read when it ends. Whatever the
    test leaves running is killed after it (tests/processes.py), frozen or not."""

    agent_id: str
    proc: subprocess.Popen[str]
    err_path: Path

    @classmethod
    def start(
        cls, server: ServerProcess, agent_id: str, *extra: str, token: str = PULL_TOKEN
    ) -> ChaosAgent:
        err_path = server.workdir / f"{agent_id}.stderr"
        env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_FLEET_")}
        with err_path.open("w") as err:
            proc = processes.spawn(
                [sys.executable, str(CHAOS_AGENT), server.url, token, agent_id, *extra],
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env=env,
            )
        return cls(agent_id, proc, err_path)

    def holding(self) -> list[str]:
        """Task ids this agent announced it holds (on stderr, as they happen)."""
        held = []
        for line in self.err_path.read_text().splitlines():
            if line.startswith('{"holding"'):
                held.append(json.loads(line)["holding"])
        return held

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def kill9(self) -> None:
        processes.kill(self.proc)

    def report(self, timeout: float = REPORT_PATIENCE_SECS) -> dict[str, Any]:
        out, _ = self.proc.communicate(timeout=timeout)
        assert self.proc.returncode == 0, (self.proc.returncode, self.err_path.read_text())
        lines = [line for line in out.splitlines() if line.strip()]
        report: dict[str, Any] = json.loads(lines[-1])
        return report


@dataclass
class Audit:
    """What the event log says, read straight from the SQLite file."""

    events: int = 0
    tasks: dict[str, str] = field(default_factory=dict)  # task id → projected state
    completed: Counter[str] = field(default_factory=Counter)  # task id → task.completed count
    completed_by: dict[str, tuple[str, int]] = field(default_factory=dict)  # → (agent, attempt)
    problems: list[str] = field(default_factory=list)
    types: Counter[str] = field(default_factory=Counter)


def audit(db_path: Path) -> Audit:
    """Check the invariants every history must keep, whatever crashed while it was written.

    - `seq` is 1..N with no gap and no repeat; each stream's `version` is 1..n.
    - One `task.completed` at most per task.
    - Each attempt is assigned once, started at most once, and only by the
      agent it was assigned to; a completion belongs to the attempt that was
      running, by its holder.
    """
    result = Audit()
    uri = f"file:{db_path}?mode=ro"
    with sqlite3.connect(uri, uri=True) as conn:
        rows = conn.execute(
            "SELECT seq, stream, version, type, data, actor FROM events ORDER BY seq"
        ).fetchall()
        result.tasks = dict(conn.execute("SELECT task_id, state FROM tasks").fetchall())
    result.events = len(rows)
    seqs = [r[0] for r in rows]
    if seqs != list(range(1, len(rows) + 1)):
        result.problems.append(f"seq is not 1..{len(rows)}: gaps or repeats")
    versions: dict[str, list[int]] = defaultdict(list)
    assigned: dict[tuple[str, int], str] = {}
    started: dict[tuple[str, int], str] = {}
    current: dict[str, int] = {}  # task id → attempt of its last assignment
    for _seq, stream, version, type_, data_text, actor in rows:
        versions[stream].append(version)
        result.types[type_] += 1
        data = json.loads(data_text)
        if type_ == "task.assigned":
            key = (stream, data["attempt"])
            if key in assigned:
                result.problems.append(f"{key} assigned twice")
            assigned[key] = data["agent_id"]
            current[stream] = data["attempt"]
        elif type_ == "task.started":
            key = (stream, data["attempt"])
            if key in started:
                result.problems.append(f"{key} started twice ({started[key]}, {data['agent_id']})")
            if assigned.get(key) != data["agent_id"]:
                result.problems.append(f"{key} started by {data['agent_id']}, not its assignee")
            started[key] = data["agent_id"]
        elif type_ == "task.completed":
            result.completed[stream] += 1
            attempt = current.get(stream, -1)
            holder = assigned.get((stream, attempt), "?")
            result.completed_by[stream] = (holder, attempt)
            if (stream, attempt) not in started:
                result.problems.append(f"{stream} completed attempt {attempt} never started")
            if actor != holder:
                result.problems.append(f"{stream} completed by {actor}, held by {holder}")
    for stream, seen in versions.items():
        if seen != list(range(1, len(seen) + 1)):
            result.problems.append(f"stream {stream} versions are not 1..n: {seen}")
    for task_id, count in result.completed.items():
        if count > 1:
            result.problems.append(f"{task_id} completed {count} times")
    return result


def rebuild_agrees(server: ServerProcess) -> str:
    """`agent-fleet db rebuild --check` on the stopped server's file: its stdout, or fail."""
    check = server.cli("db", "rebuild", "--check", "--config", str(server.config_path))
    assert check.returncode == 0, check.stdout + check.stderr
    assert "projections match the events" in check.stdout, check.stdout
    return check.stdout.strip()
