"""Budgets end to end, with real processes: a server, a real `agent-fleet agent` whose CLI's
receipts report spend, the Forgejo stand-in for the issue the task came from, and the CLI.

- A task whose receipts reach `max_cost_usd_per_task` stops retrying: it fails with
  reason `budget_exceeded`, and its issue is told so.
- A repository past `daily_budget_usd` gets its new tasks held in `created`, visibly,
  across a restart, until an operator's retry (the midnight release is proven with a
  clock the test moves, in tests/unit/test_budget_service.py).
"""

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.agents import AgentProcess
from tests.e2e.forgejo import ForgejoStandIn
from tests.e2e.helpers import PATIENCE_SECS, create, dequeue, register, task, wait_for
from tests.e2e.server import PULL_TOKEN, ServerProcess
from tests.e2e.test_forgejo_flow import REPO, RUST, clients, fleet_with
from tests.e2e.test_forgejo_flow import forgejo as forgejo  # the stand-in fixture
from tests.e2e.test_webhooks import deliver

SPENDING_CLI = Path(__file__).with_name("spending_cli.py")


def start_spending_agent(server: ServerProcess, agent_id: str, work_dir: Path) -> AgentProcess:
    """`agent-fleet agent` running the spending stand-in CLI ($0.60 and a failure a run)."""
    log_path = work_dir.parent / f"{agent_id}.log"
    argv = [
        sys.executable, "-m", "agent_fleet", "agent",
        "--server", server.url, "--token", PULL_TOKEN,
        "--agent-id", agent_id, "--agent-type", "claude",
        "--capability", "code:rust", "--work-dir", str(work_dir),
        "--", sys.executable, str(SPENDING_CLI), "{prompt_file}",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_FLEET_")}
    with log_path.open("ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
    return AgentProcess(proc, log_path)


@pytest.fixture
def spending_agent() -> Iterator[list[AgentProcess]]:
    """Agents a test starts, stopped however it ends."""
    started: list[AgentProcess] = []
    yield started
    for agent in started:
        agent.stop()


def history(admin: httpx.Client, task_id: str) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = admin.get(f"/api/v1/tasks/{task_id}/events").json()["events"]
    return events


def test_a_task_whose_receipts_pass_its_budget_stops_retrying_and_its_issue_is_told(
    tmp_path: Path, forgejo: ForgejoStandIn, spending_agent: list[AgentProcess]
) -> None:
    forgejo.set(
        "issue", repo=REPO, number=12, title="Export is empty", body="see logs",
        labels=["bug"], labelled_by="carol",
    )  # fmt: skip
    server = fleet_with(
        tmp_path,
        forgejo,
        orchestrator={"max_cost_usd_per_task": 1.0, "default_max_retries": 5},
        comment_on=["failed"],
    ).start()
    with clients(server) as (admin, puller):
        made = deliver(admin, "issues_label_updated.json", replace=RUST, delivery="b-1")
        task_id = made.json()["task_id"]
        spending_agent.append(start_spending_agent(server, "spender", tmp_path / "work"))

        def stopped() -> bool:
            return task(admin, task_id)["state"] == "failed"

        wait_for(stopped, 60, "the task to fail for good")
        final = task(admin, task_id)
        # $0.60 a run: the first failure retries, the second reaches the $1.00 budget.
        assert final["attempt"] == 1 and final["retry_at"] is None
        assert final["failure"]["reason"] == "budget_exceeded"
        assert final["spend"] == {"tokens": 8000, "cost_usd": pytest.approx(1.2)}
        failures = [
            e["data"]["reason"] for e in history(admin, task_id) if e["type"] == "task.failed"
        ]
        assert failures == ["error", "budget_exceeded"]
        spend = admin.get(f"/api/v1/tasks/{task_id}/spend").json()
        assert [(a["attempt"], a["usage"]["cost_usd"]) for a in spend["attempts"]] == [
            (0, 0.6),
            (1, 0.6),
        ]
        assert spend["budget"]["overrun"] == "spent $1.2000 of its $1.0000 budget"

        def told() -> list[str]:
            return [c for c in forgejo.comments(REPO, 12) if "budget_exceeded" in c]

        wait_for(lambda: bool(told()), PATIENCE_SECS, "a budget_exceeded comment on the issue")
        (comment,) = told()
        assert "No retry will follow" in comment
        assert "spent $1.2000 of its $1.0000 budget across 2 attempts" in comment
        # The operator sees the same from the CLI: spend per attempt and the total.
        shown = server.cli("tasks", "show", task_id, "--server", server.url)
        assert shown.returncode == 0, shown.stderr
        assert "budget_exceeded" in shown.stdout and "$1.2000" in shown.stdout
        # Still failed while the agent keeps asking for work: nothing retried it.
        assert dequeue(puller, "spender", wait=0) is None
        assert [e["type"] for e in history(admin, task_id)][-1] == "task.failed"


def test_a_spent_repository_gets_new_tasks_held_until_an_operator_retries(
    tmp_path: Path,
) -> None:
    server = ServerProcess(tmp_path, forgejo={"daily_budget_usd": 1.0}).start()
    with clients(server) as (admin, puller):
        register(puller, "worker", [])
        first = create(admin, "Spend the budget", [], repo="acme/widgets")["task_id"]
        got = dequeue(puller, "worker")
        assert got is not None and got[0] == first
        done = puller.post(
            f"/api/v1/tasks/{first}/complete",
            json={
                "agent_id": "worker",
                "lease": got[1],
                "status": "completed",
                "summary": "done",
                "usage": {"tokens": 50_000, "cost_usd": 1.5},
            },
        )
        assert done.status_code == 200, done.text

        held = create(admin, "Wait for tomorrow", [], repo="acme/widgets")
        elsewhere = create(admin, "Another repository", [], repo="acme/gadgets")
        assert held["state"] == "created" and elsewhere["hold"] is None
        assert held["hold"]["reason"] == (
            "repository acme/widgets spent $1.50 of its $1.00 daily budget today"
        )
        got = dequeue(puller, "worker")
        assert got is not None and got[0] == elsewhere["task_id"]  # the held one is passed over
        puller.post(
            f"/api/v1/tasks/{got[0]}/complete",
            json={"agent_id": "worker", "lease": got[1], "status": "completed", "summary": "ok"},
        )
        assert dequeue(puller, "worker") is None
        events = [e["type"] for e in history(admin, held["task_id"])]
        assert events == ["task.created", "task.held"]

        # Visible where operators look, and still held after a restart.
        server.stop()
        server.start()
        listed = server.cli("tasks", "show", held["task_id"], "--server", server.url, "--json")
        assert listed.returncode == 0, listed.stderr
        assert json.loads(listed.stdout)["task"]["hold"]["until"].endswith("T00:00:00Z")
        page = admin.get(f"/ui/tasks/{held['task_id']}/detail").text
        assert "daily budget today" in page and 'data-action="retry"' in page
        assert dequeue(puller, "worker") is None

        retried = admin.post(f"/api/v1/tasks/{held['task_id']}/retry")
        assert retried.status_code == 200 and retried.json()["hold"] is None
        got = dequeue(puller, "worker")
        assert got is not None and got[0] == held["task_id"]
        assert [e["type"] for e in history(admin, held["task_id"])][-2:] == [
            "task.hold_lifted",
            "task.assigned",
        ]
        server.stop()  # db rebuild runs only while no server holds the file
        rebuilt = server.cli("db", "rebuild", "--check", "--config", str(server.config_path))
        assert "projections match the events" in rebuilt.stdout, rebuilt.stdout + rebuilt.stderr


def test_the_biggest_spenders_come_first(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path).start()
    with clients(server) as (admin, puller):
        register(puller, "worker", [], slots=3)
        costs = {"small": 0.05, "large": 2.5, "medium": 0.4}
        for title, usd in costs.items():
            task_id = create(admin, title, [], max_retries=0)["task_id"]
            got = dequeue(puller, "worker")
            assert got is not None and got[0] == task_id
            puller.post(
                f"/api/v1/tasks/{task_id}/complete",
                json={
                    "agent_id": "worker", "lease": got[1], "status": "failed", "error": "no",
                    "usage": {"tokens": 10, "cost_usd": usd},
                },
            )  # fmt: skip
        create(admin, "unpriced", [])
        ranked = admin.get("/api/v1/tasks", params={"sort": "spend", "limit": 3}).json()
        assert [t["title"] for t in ranked["tasks"]] == ["large", "medium", "small"]
        assert ranked["next_cursor"] is None
        shown = server.cli("tasks", "list", "--sort", "spend", "--server", server.url)
        assert shown.returncode == 0, shown.stderr
        lines = [line for line in shown.stdout.splitlines() if "tok ·" in line]
        assert [next(w for w in costs if w in line) for line in lines[:3]] == [
            "large",
            "medium",
            "small",
        ]
        assert "$2.5000" in lines[0]
