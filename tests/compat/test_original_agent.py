"""An agent written for the original works unchanged with `agent_auth = "original"`,
in open mode and with a shared token (each test runs in both)."""

from collections.abc import Callable
from datetime import datetime

import httpx

from tests.compat.original_client import OriginalAgent, OriginalOperator, OriginalTask
from tests.e2e.server import ServerProcess

AgentOf = Callable[[str], OriginalAgent]


def _take(agent: OriginalAgent, operator: OriginalOperator, title: str, caps: list[str]) -> str:
    """The operator makes a task; the agent dequeues it and says it runs."""
    created = operator.create(title, caps)
    got = agent.dequeue(caps)
    assert got is not None, f"{agent.agent_id} got nothing for {title!r}"
    assert got["task_id"] == created["task_id"]
    assert agent.status(got["task_id"], "running").status_code == 200
    return str(got["task_id"])


def test_the_quick_start_works_unchanged(agent_of: AgentOf, operator: OriginalOperator) -> None:
    agent = agent_of("laptop-claude")
    assert agent.register(["code:rust"], max_concurrency=2).status_code == 200
    assert agent.registry_token  # "save your agent_id and registry_token"
    assert agent.heartbeat().status_code == 200
    created = operator.create("Fix the parser", ["code:rust"])
    assert created["status"] == "created"
    assert created["assigned_agent_id"] is None

    task = agent.dequeue(["code:rust"])
    assert task is not None
    assert task["task_id"] == created["task_id"]
    assert task["status"] == "assigned"
    assert task["assigned_agent_id"] == "laptop-claude"
    assert task["assigned_host"] is None  # a pull agent, not a [[hosts]] slot
    assert task["branch_name"] == f"task/{task['task_id']}"
    assert task["pr_title"] == "Fix the parser"
    assert task["review_count"] == 0
    assert task["execution_mode"] == "http_pull"  # resolved when handed out, as the original
    assert datetime.fromisoformat(task["last_activity_at"].replace("Z", "+00:00"))
    assert task["prompt"] == "Please: Fix the parser"
    again = agent.dequeue(["code:rust"])  # a lost reply loses nothing: the same task again
    assert again is not None and again["task_id"] == task["task_id"]

    running = agent.status(task["task_id"], "running")
    assert running.status_code == 200, running.text
    assert operator.get(task["task_id"])["status"] == "running"

    done = agent.complete(task["task_id"], agent.receipt(task["task_id"], "completed", []))
    assert done["status"] == "completed"
    assert done["assigned_agent_id"] == "laptop-claude"
    assert operator.get(task["task_id"])["status"] == "completed"


def test_every_receipt_the_original_documents(
    agent_of: AgentOf, operator: OriginalOperator, oracle: httpx.Client
) -> None:
    agent = agent_of("receipts")
    assert agent.register(["docs"], max_concurrency=8).status_code == 200
    pr = {"type": "pr", "url": "https://forge.example/acme/widgets/pulls/7"}
    files = [
        {"type": "file", "path": "docs/report.md"},
        "notes/summary.txt",
        {"type": "branch", "name": "task/x", "sha": "0123abcd"},
        {"type": "screenshot", "url": "https://cdn.example/shot.png", "width": 1280},
    ]
    cases = [
        ("completed", [], None, "completed"),
        ("failed", [], "tests fail: 3 errors", "failed"),
        ("partial", [], "half of it", "failed"),
        ("completed", [pr], None, "review_pending"),
        ("completed", files, None, "completed"),
    ]
    for status, artifacts, error, expected in cases:
        task_id = _take(agent, operator, f"receipt {status} {len(artifacts)}", ["docs"])
        done = agent.complete(task_id, agent.receipt(task_id, status, artifacts, error))
        assert done["status"] == expected, (status, artifacts)

    # Through the receipts endpoint, the same receipt.
    task_id = _take(agent, operator, "via /receipts", ["docs"])
    done = agent.post_receipt(agent.receipt(task_id, "completed", files))
    assert done["status"] == "completed"

    # Nothing of the file receipt was lost (checked with our own field names).
    kept = oracle.get(f"/api/v1/tasks/{task_id}").json()["receipt"]["artifacts"]
    assert [a["type"] for a in kept] == ["file", "file", "branch", "screenshot"]
    assert kept[0]["path"] == "docs/report.md"
    assert kept[1]["path"] == "notes/summary.txt"
    assert (kept[2]["name"], kept[2]["sha"]) == ("task/x", "0123abcd")
    assert kept[3]["url"] == "https://cdn.example/shot.png"
    assert kept[3]["extra"] == {"width": 1280}
    detail = oracle.get(f"/ui/tasks/{task_id}/detail").text  # and the dashboard shows them
    assert "file: docs/report.md" in detail
    assert "screenshot: https://cdn.example/shot.png" in detail


def test_the_operator_assigns_retries_and_lists(
    agent_of: AgentOf, operator: OriginalOperator
) -> None:
    agent = agent_of("docs-writer")
    assert agent.register(["docs"]).status_code == 200
    created = operator.create("Write the changelog", ["docs"])
    assigned = operator.assign(created["task_id"], "docs-writer")
    assert assigned["status"] == "assigned"
    assert assigned["assigned_agent_id"] == "docs-writer"

    got = agent.dequeue(["docs"])
    assert got is not None and got["task_id"] == created["task_id"]
    assert agent.status(got["task_id"], "running").status_code == 200
    failed = agent.complete(got["task_id"], agent.receipt(got["task_id"], "failed", [], "no"))
    assert failed["status"] == "failed"
    assert [t["task_id"] for t in operator.list(status="failed")] == [created["task_id"]]

    retried = operator.retry(created["task_id"])
    assert retried["status"] == "created"
    assert retried["assigned_agent_id"] is None
    other = operator.create("Another", ["docs"])
    listed = {t["task_id"]: t["status"] for t in operator.list()}
    assert listed == {created["task_id"]: "created", other["task_id"]: "created"}
    assert operator.list(status="failed") == []

    again = agent.dequeue(["docs"])
    assert again is not None
    assert agent.status(again["task_id"], "running").status_code == 200
    done = agent.complete(again["task_id"], agent.receipt(again["task_id"], "completed", []))
    assert done["status"] == "completed"


def test_registering_again_needs_no_token_and_dequeue_declares_capabilities(
    agent_of: AgentOf, operator: OriginalOperator, oracle: httpx.Client
) -> None:
    agent = agent_of("polyglot")
    assert agent.register(["code:python"]).status_code == 200
    # Upsert by agent_id, as the original: no token, whoever asks.
    assert agent.register(["code:go"], max_concurrency=3).status_code == 200
    rust = operator.create("Port to Rust", ["code:rust"])

    # The capabilities sent with dequeue are what the agent declares now.
    got = agent.dequeue(["code:rust"])
    assert got is not None and got["task_id"] == rust["task_id"]
    agents = {a["agent_id"]: a for a in oracle.get("/api/v1/agents").json()["agents"]}
    assert agents["polyglot"]["capabilities"] == ["code:rust"]
    assert agents["polyglot"]["max_concurrency"] == 3


def test_deregistering_loses_the_held_task(agent_of: AgentOf, operator: OriginalOperator) -> None:
    agent = agent_of("leaving")
    assert agent.register(["ops"]).status_code == 200
    task_id = _take(agent, operator, "Rotate the logs", ["ops"])
    assert agent.deregister().status_code == 200
    lost: OriginalTask = operator.get(task_id)
    assert lost["status"] == "agent_lost"
    assert agent.heartbeat().status_code == 404  # gone: the original's agent registers again
    assert agent.register(["ops"]).status_code == 200
    assert agent.heartbeat().status_code == 200


def test_health_and_errors_as_the_original_documents(
    agent_of: AgentOf, operator: OriginalOperator, original_server: ServerProcess
) -> None:
    # "GET /healthz → 200 OK": a check of the status code (ours answers JSON, not `ok`).
    assert httpx.get(f"{original_server.url}/healthz", timeout=10).status_code == 200

    agent = agent_of("errors")
    unknown = agent.heartbeat()  # "Errors: 404 if agent not found"
    assert unknown.status_code == 404
    assert isinstance(unknown.json()["error"], str)  # errors are {"error": "<message>"}

    assert agent.register(["qa"]).status_code == 200
    task_id = _take(agent, operator, "Run the suite", ["qa"])
    assert agent.complete(task_id, agent.receipt(task_id, "completed", []))["status"] == "completed"
    # An invalid state transition (retrying a completed task): the original answers
    # 400, we 409; both are errors with the message in "error".
    refused = httpx.post(f"{original_server.url}/api/v1/tasks/{task_id}/retry", timeout=10)
    assert refused.status_code in (400, 409)
    assert "completed" in refused.json()["error"]
