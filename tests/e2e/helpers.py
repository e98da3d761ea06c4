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


def wait_for(check: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")
