"""Small HTTP helpers shared by the end-to-end tests."""

import time
from collections.abc import Callable
from typing import Any

import httpx


def register(client: httpx.Client, agent_id: str, caps: list[str], slots: int = 1) -> str:
    reply = client.post(
        "/api/v1/agents/register",
        json={
            "agent_id": agent_id,
            "agent_type": "e2e",
            "capabilities": caps,
            "max_concurrency": slots,
        },
    )
    assert reply.status_code == 200, reply.text
    token: str = reply.json()["registry_token"]
    return token


def create(admin: httpx.Client, title: str, caps: list[str], **extra: Any) -> dict[str, Any]:
    reply = admin.post(
        "/api/v1/tasks",
        json={
            "title": title,
            "prompt": f"prompt of {title}",
            "required_capabilities": caps,
            **extra,
        },
    )
    assert reply.status_code == 201, reply.text
    task: dict[str, Any] = reply.json()
    return task


def dequeue(client: httpx.Client, agent_id: str, wait: float = 0) -> tuple[str, str] | None:
    reply = client.post("/api/v1/tasks/dequeue", json={"agent_id": agent_id, "wait_secs": wait})
    if reply.status_code == 204:
        return None
    assert reply.status_code == 200, reply.text
    return reply.json()["task_id"], reply.json()["lease"]


def events(client: httpx.Client, task_id: str) -> list[str]:
    reply = client.get(f"/api/v1/tasks/{task_id}/events")
    assert reply.status_code == 200, reply.text
    return [e["type"] for e in reply.json()["events"]]


def task(client: httpx.Client, task_id: str) -> dict[str, Any]:
    reply = client.get(f"/api/v1/tasks/{task_id}")
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


#: How long to wait for what takes well under a second on an idle machine. Generous,
#: because the machine running the suite may be starved: a wait ends as soon as its
#: condition holds, so only a failing test ever waits this long.
PATIENCE_SECS = 60.0


def wait_for(
    check: Callable[[], bool],
    timeout: float = PATIENCE_SECS,
    what: str = "condition",
    *,
    seen: Callable[[], object] | None = None,
) -> None:
    """Poll `check` until it holds; after `timeout` seconds fail, saying what `seen` saw."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            found = f"; last seen: {seen()!r}" if seen is not None else ""
            raise AssertionError(f"waited {timeout:.0f}s for {what}{found}")
        time.sleep(0.05)


def wait_for_state(
    client: httpx.Client, task_id: str, *states: str, timeout: float = PATIENCE_SECS
) -> dict[str, Any]:
    """Wait until the task is in one of `states`; its body. On failure the message shows
    where it was instead: its state, attempt, failure and history."""
    body: dict[str, Any] = {}

    def reached() -> bool:
        body.update(task(client, task_id))
        return body["state"] in states

    def where() -> dict[str, Any]:
        keys = ("state", "attempt", "max_retries", "agent_id", "failure")
        return {**{k: body.get(k) for k in keys}, "events": events(client, task_id)}

    wait_for(reached, timeout, f"task {task_id} to be {' or '.join(states)}", seen=where)
    return body
