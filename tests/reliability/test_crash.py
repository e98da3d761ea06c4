"""kill -9 of the server under load from several pull agents, again and again.

Agents are separate processes that keep pulling while the server dies under
them; tasks keep being created from another thread. After every crash the
server restarts on the same SQLite file. At the end every acknowledged task
exists and was completed exactly once, the event log has no gap, every attempt
was started only by its assignee, and `agent-fleet db rebuild` agrees with the
stored projections.

Set AGENT_FLEET_SOAK=1 for the long variant (many more kills and tasks).
"""

import os
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.e2e.helpers import PATIENCE_SECS, wait_for
from tests.e2e.server import ADMIN_TOKEN, ServerProcess
from tests.reliability.support import ChaosAgent, audit, rebuild_agrees

SOAK = os.environ.get("AGENT_FLEET_SOAK") == "1"
KILLS = 40 if SOAK else 5
AGENTS = 6 if SOAK else 4
MAX_TASKS = 5000 if SOAK else 150


class Producer(threading.Thread):
    """Creates tasks steadily while the server lives and dies; remembers what was acked."""

    def __init__(self, url: str, limit: int) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.limit = limit
        self.acked: list[str] = []
        self.unanswered = 0  # creates refused by a dead server or whose reply was lost
        self.done = threading.Event()

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=5) as http:
            number = 0
            while not self.done.is_set() and len(self.acked) < self.limit:
                number += 1
                try:
                    reply = http.post(
                        "/api/v1/tasks",
                        json={"title": f"chaos {number}", "prompt": "p", "max_retries": 50},
                    )
                except httpx.HTTPError:
                    self.unanswered += 1
                    time.sleep(0.05)
                    continue
                if reply.status_code == 201:
                    self.acked.append(reply.json()["task_id"])
                else:
                    self.unanswered += 1
                time.sleep(random.uniform(0.01, 0.06))


@pytest.mark.timeout(900)
def test_kill_9_under_load_loses_nothing_and_does_nothing_twice(
    tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    server = ServerProcess(tmp_path, orchestrator={"default_max_retries": 50})
    stop_file = tmp_path / "stop"
    producer = Producer(server.url, MAX_TASKS)
    rng = random.Random()
    with server:
        agents = [
            ChaosAgent.start(server, f"chaos-{i}", "--work", "0.05", "--stop-file", str(stop_file))
            for i in range(AGENTS)
        ]
        producer.start()
        try:
            for _ in range(KILLS):
                time.sleep(rng.uniform(0.3, 1.2))
                server.kill9()
                time.sleep(rng.uniform(0.0, 0.3))
                server.start()
            producer.done.set()
            producer.join(timeout=PATIENCE_SECS)
            assert not producer.is_alive()
            with httpx.Client(base_url=server.url, timeout=30) as reader:
                wait_for(
                    lambda: _states(reader) == {"completed"},
                    timeout=3 * PATIENCE_SECS,  # a backlog of retries to work off
                    what="every task to complete after the crashes",
                    seen=lambda: _states(reader),
                )
        finally:
            producer.done.set()
            stop_file.touch()  # agents finish their task and report
        reports = [a.report() for a in agents]

    result = audit(server.db_path)
    assert result.problems == []
    assert set(producer.acked) <= set(result.tasks), "an acknowledged create was lost"
    assert set(result.tasks.values()) == {"completed"}
    assert len(result.tasks) >= 20, "too little load to prove anything"
    assert all(result.completed[t] == 1 for t in result.tasks)
    # Every completion an agent was told succeeded is the one in the log.
    for report in reports:
        for task_id, attempt in report["completed"]:
            assert result.completed_by[task_id] == (report["agent_id"], attempt)
    # What agents were refused was the fence at work, never anything else.
    refusals = [r for report in reports for r in report["refused"]]
    assert {r["status"] for r in refusals} <= {409}, refusals
    assert rebuild_agrees(server)

    figures = {
        "kills_survived": KILLS,
        "agents": AGENTS,
        "tasks": len(result.tasks),
        "tasks_acked_at_create": len(producer.acked),
        "creates_unanswered": producer.unanswered,
        "events": result.events,
        "agent_lost": result.types["task.agent_lost"],
        "fenced_refusals": len(refusals),
        "agent_transport_errors": sum(r["transport_errors"] for r in reports),
    }
    print("crash figures:", figures)
    for key, value in figures.items():
        record_property(key, value)


def _states(reader: httpx.Client) -> set[str]:
    """The states of every task, page by page."""
    states: set[str] = set()
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 500}
        if cursor:
            params["cursor"] = cursor
        page = reader.get("/api/v1/tasks", params=params).json()
        states |= {t["state"] for t in page["tasks"]}
        cursor = page["next_cursor"]
        if cursor is None:
            return states
