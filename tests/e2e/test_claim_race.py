"""Many agent processes dequeuing at once over HTTP: every task handed out exactly once."""

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx

from tests import processes
from tests.e2e.helpers import create, events
from tests.e2e.server import PULL_TOKEN, ServerProcess

AGENTS = 12
TASKS = 150
AGENT_PATIENCE_SECS = 600  # they stop on their own once the queue stays empty


def test_concurrent_pull_agents_never_share_a_task(
    server: ServerProcess, admin: httpx.Client
) -> None:
    ids = {create(admin, f"t{i}", ["race"])["task_id"] for i in range(TASKS)}
    script = Path(__file__).with_name("pull_agent.py")
    procs = [
        processes.spawn(
            [sys.executable, str(script), server.url, PULL_TOKEN, f"racer-{n}", "race", "3"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(AGENTS)
    ]
    completed: list[str] = []
    for proc in procs:
        out, _ = proc.communicate(timeout=AGENT_PATIENCE_SECS)
        assert proc.returncode == 0
        completed += json.loads(out)
    counts = Counter(completed)
    assert set(counts) == ids
    assert max(counts.values()) == 1, "a task was handed to two agents"
    states = Counter(t["state"] for t in admin.get("/api/v1/tasks?limit=500").json()["tasks"])
    assert states == {"completed": TASKS}
    sample = sorted(ids)[:10]
    for task_id in sample:
        assert events(admin, task_id).count("task.assigned") == 1
