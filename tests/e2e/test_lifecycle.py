"""The task lifecycle over real HTTP against `agent-fleet serve`."""

import threading
import time

import httpx

from tests.e2e.helpers import create, dequeue, events, register, task, wait_for
from tests.e2e.server import ServerProcess

# Tokens the receipt did not split are shown as null, not left out.
_NO_SPLIT = dict.fromkeys(
    ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
)


def test_full_lifecycle_is_recorded_as_events(admin: httpx.Client, puller: httpx.Client) -> None:
    register(puller, "worker-1", ["code:python"])
    created = create(admin, "fix bug", ["code:python"])
    assert created["state"] == "created"
    assert created["branch_name"] == f"task/{created['task_id']}"

    task_id, lease = dequeue(puller, "worker-1") or ("", "")
    assert task_id == created["task_id"]
    running = puller.post(
        f"/api/v1/tasks/{task_id}/status",
        json={
            "agent_id": "worker-1",
            "lease": lease,
            "state": "running",
            "progress": 40,
            "message": "tests pass",
        },
    )
    assert running.json()["task"]["state"] == "running"
    assert running.json()["cancel"] is False
    done = puller.post(
        f"/api/v1/tasks/{task_id}/complete",
        json={
            "agent_id": "worker-1",
            "lease": lease,
            "status": "completed",
            "summary": "ok",
            "usage": {"tokens": 1200, "cost_usd": 0.03},
        },
    )
    assert done.status_code == 200
    body = done.json()
    assert body["state"] == "completed"
    usage = body["receipt"]["usage"]
    assert (usage["tokens"], usage["cost_usd"]) == (1200, 0.03)
    assert body["finished_at"] is not None
    assert events(admin, task_id) == [
        "task.created",
        "task.assigned",
        "task.started",
        "task.progress",
        "task.completed",
    ]
    history = admin.get(f"/api/v1/tasks/{task_id}/events").json()["events"]
    assert [e["actor"] for e in history] == ["operator"] + ["worker-1"] * 4
    assert all("lease" not in e["data"] for e in history)


def test_receipt_with_pr_waits_for_review(admin: httpx.Client, puller: httpx.Client) -> None:
    register(puller, "w", [])
    task_id = create(admin, "t", [])["task_id"]
    _, lease = dequeue(puller, "w") or ("", "")
    reply = puller.post(
        "/api/v1/receipts",
        json={
            "task_id": task_id,
            "agent_id": "w",
            "lease": lease,
            "status": "completed",
            "summary": "opened PR",
            "artifacts": [{"type": "pr", "url": "https://forge.example/o/r/pulls/7"}],
        },
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["state"] == "review_pending"
    assert reply.json()["pr"] == {
        "url": "https://forge.example/o/r/pulls/7",
        "number": 7,
        "state": "open",
    }


def test_capabilities_route_tasks(admin: httpx.Client, puller: httpx.Client) -> None:
    register(puller, "py", ["code:python"])
    register(puller, "rs", ["code:rust", "code:python"])
    rust = create(admin, "rust task", ["code:rust"])["task_id"]
    assert dequeue(puller, "py") is None
    got = dequeue(puller, "rs")
    assert got is not None and got[0] == rust


def test_max_concurrency_and_redelivery(admin: httpx.Client, puller: httpx.Client) -> None:
    register(puller, "pair", [], slots=2)
    ids = [create(admin, f"t{i}", [], priority=i)["task_id"] for i in range(3)]
    first = dequeue(puller, "pair")
    assert first is not None and first[0] == ids[2]  # highest priority first
    # The reply was "lost": asking again hands back the same task and lease.
    assert dequeue(puller, "pair") == first
    puller.post(
        f"/api/v1/tasks/{first[0]}/status",
        json={"agent_id": "pair", "lease": first[1], "state": "running"},
    )
    second = dequeue(puller, "pair")
    assert second is not None and second[0] == ids[1]
    puller.post(
        f"/api/v1/tasks/{second[0]}/status",
        json={"agent_id": "pair", "lease": second[1], "state": "running"},
    )
    assert dequeue(puller, "pair") is None  # two running: full
    listed = admin.get("/api/v1/agents").json()["agents"]
    assert [(a["agent_id"], a["running_tasks"]) for a in listed] == [("pair", 2)]


def test_failures_retry_until_max_retries(admin: httpx.Client, puller: httpx.Client) -> None:
    register(puller, "w", [])
    task_id = create(admin, "flaky", [], max_retries=2)["task_id"]
    for attempt in range(3):
        got = dequeue(puller, "w", wait=2)
        assert got is not None, f"attempt {attempt} was not handed out"
        reply = puller.post(
            f"/api/v1/tasks/{task_id}/complete",
            json={"agent_id": "w", "lease": got[1], "status": "failed", "error": "tests fail"},
        )
        # Backoff is 0 in these tests: the retry is in the same commit as the failure.
        expected = ("created", attempt + 1) if attempt < 2 else ("failed", 2)
        assert (reply.json()["state"], reply.json()["attempt"]) == expected
    final = task(admin, task_id)
    assert final["state"] == "failed"
    assert final["failure"] == {"reason": "error", "message": "tests fail"}
    assert events(admin, task_id).count("task.retried") == 2

    manual = admin.post(f"/api/v1/tasks/{task_id}/retry")
    assert manual.status_code == 200
    assert manual.json()["state"] == "created" and manual.json()["attempt"] == 3


LONG_POLL_SECS = 30  # the server's long_poll_max_secs default


def test_long_poll_wakes_when_a_task_arrives(admin: httpx.Client, puller: httpx.Client) -> None:
    register(puller, "waiter", ["docs"])
    result: list[object] = []

    def poll() -> None:
        result.append(dequeue(puller, "waiter", wait=LONG_POLL_SECS))
        result.append(time.monotonic())

    thread = threading.Thread(target=poll)
    thread.start()
    time.sleep(0.5)  # most likely waiting by now; if not, it finds the task at once
    created_at = time.monotonic()
    task_id = create(admin, "docs", ["docs"])["task_id"]
    thread.join(timeout=LONG_POLL_SECS + 60)
    got, answered_at = result
    assert got is not None and got[0] == task_id  # type: ignore[index]
    # Woken by the task, not by the end of its wait (the server caps it at 30 s).
    waited = answered_at - created_at  # type: ignore[operator]
    assert waited < 25, f"the long-poll did not wake on the new task ({waited:.1f}s)"


def test_timeout_fails_the_attempt(
    server: ServerProcess, admin: httpx.Client, puller: httpx.Client
) -> None:
    register(puller, "slow", [])
    task_id = create(admin, "slow", [], timeout_secs=1, max_retries=0)["task_id"]
    assert dequeue(puller, "slow") is not None
    wait_for(lambda: task(admin, task_id)["state"] == "failed", what="timeout")
    assert task(admin, task_id)["failure"]["reason"] == "timeout"


def test_cancel_tells_the_agent_to_stop(admin: httpx.Client, puller: httpx.Client) -> None:
    register(puller, "w", [])
    task_id = create(admin, "t", [])["task_id"]
    _, lease = dequeue(puller, "w") or ("", "")
    assert admin.post(f"/api/v1/tasks/{task_id}/cancel").json()["state"] == "cancelled"
    beat = puller.post(
        "/api/v1/agents/heartbeat", json={"agent_id": "w", "running_tasks": [task_id]}
    )
    assert beat.json()["cancel_tasks"] == [task_id]
    status = puller.post(
        f"/api/v1/tasks/{task_id}/status",
        json={"agent_id": "w", "lease": lease, "state": "running"},
    )
    assert status.status_code == 200 and status.json()["cancel"] is True
    assert task(admin, task_id)["state"] == "cancelled"
    again = admin.post(f"/api/v1/tasks/{task_id}/cancel")
    assert again.status_code == 409 and "cancelled" in again.json()["error"]
