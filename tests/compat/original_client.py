"""An agent (and its operator) written from the original Agent Fleet's documents alone.

What it knows is what the original documents (its `skill/SKILL.md` quick start,
`docs/agent-api-reference.md` and OpenSpec specs; quoted in
docs/migrating-from-the-original.md), and nothing of ours:

- register `POST /api/v1/agents/register {agent_id, agent_type, hostname, capabilities,
  max_concurrency}`, heartbeat `POST /api/v1/agents/heartbeat {agent_id}`, complete
  `POST /api/v1/tasks/<id>/complete {task_id, agent_id, status, duration_seconds, summary,
  artifacts, error}` (and the same receipt on `POST /api/v1/receipts`): no Authorization;
- dequeue `POST /api/v1/tasks/dequeue {agent_id, capabilities}` and status
  `POST /api/v1/tasks/<id>/status {agent_id, status}`: `Authorization: Bearer
  <http_pull_token>` when one is configured; dequeue answers the task itself, or 204;
- the task's fields: `task_id, title, prompt, status, assigned_agent_id, assigned_host,
  execution_mode, branch_name, pr_title, last_activity_at, review_count`.

It never sends a lease, and a reply is wrapped so that reading any name the original's
task does not have fails the test (`NotAnOriginalField`).
"""

from collections.abc import Iterator, Mapping
from typing import Any

import httpx

ORIGINAL_TASK_FIELDS = frozenset(
    {
        "task_id",
        "title",
        "prompt",
        "status",
        "assigned_agent_id",
        "assigned_host",
        "execution_mode",
        "branch_name",
        "pr_title",
        "last_activity_at",
        "review_count",
    }
)


class NotAnOriginalField(KeyError):
    pass


class OriginalTask(Mapping[str, Any]):
    """A task as the original's agent sees it: only the original's names can be read."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    def __getitem__(self, key: str) -> Any:
        if key not in ORIGINAL_TASK_FIELDS:
            raise NotAnOriginalField(f"{key!r} is not a field of the original's task")
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(k for k in self._data if k in ORIGINAL_TASK_FIELDS)

    def __len__(self) -> int:
        return sum(1 for _ in self)


class OriginalAgent:
    """One agent of the original, with the shared token when the server has one."""

    def __init__(self, base_url: str, agent_id: str, http_pull_token: str | None) -> None:
        self.agent_id = agent_id
        self._http = httpx.Client(base_url=base_url, timeout=30)
        # The original checks the token on dequeue and status only; its docs show no
        # Authorization anywhere else.
        self._guarded = {"Authorization": f"Bearer {http_pull_token}"} if http_pull_token else {}

    def close(self) -> None:
        self._http.close()

    def register(self, capabilities: list[str], max_concurrency: int = 1) -> httpx.Response:
        body = {
            "agent_id": self.agent_id,
            "agent_type": "claude",
            "hostname": "build-box",
            "capabilities": capabilities,
            "max_concurrency": max_concurrency,
        }
        return self._http.post("/api/v1/agents/register", json=body)

    def heartbeat(self) -> httpx.Response:
        return self._http.post("/api/v1/agents/heartbeat", json={"agent_id": self.agent_id})

    def dequeue(self, capabilities: list[str]) -> OriginalTask | None:
        reply = self._http.post(
            "/api/v1/tasks/dequeue",
            json={"agent_id": self.agent_id, "capabilities": capabilities},
            headers=self._guarded,
        )
        if reply.status_code == 204:
            return None
        assert reply.status_code == 200, reply.text
        return OriginalTask(reply.json())

    def status(self, task_id: str, status: str) -> httpx.Response:
        return self._http.post(
            f"/api/v1/tasks/{task_id}/status",
            json={"agent_id": self.agent_id, "status": status},
            headers=self._guarded,
        )

    def receipt(
        self, task_id: str, status: str, artifacts: list[Any], error: str | None = None
    ) -> dict[str, Any]:
        return {
            "task_id": task_id,
            "agent_id": self.agent_id,
            "status": status,
            "duration_seconds": 12.5,
            "summary": f"{status}: see the artifacts",
            "artifacts": artifacts,
            "error": error,
        }

    def complete(self, task_id: str, receipt: dict[str, Any]) -> OriginalTask:
        reply = self._http.post(f"/api/v1/tasks/{task_id}/complete", json=receipt)
        assert reply.status_code == 200, reply.text
        return OriginalTask(reply.json())

    def post_receipt(self, receipt: dict[str, Any]) -> OriginalTask:
        reply = self._http.post("/api/v1/receipts", json=receipt)
        assert reply.status_code == 200, reply.text
        return OriginalTask(reply.json())

    def deregister(self) -> httpx.Response:
        return self._http.post("/api/v1/agents/deregister", json={"agent_id": self.agent_id})


class OriginalOperator:
    """The operator's calls of the original: it has no admin token (the original had none)."""

    def __init__(self, base_url: str) -> None:
        self._http = httpx.Client(base_url=base_url, timeout=30)

    def close(self) -> None:
        self._http.close()

    def create(self, title: str, capabilities: list[str]) -> OriginalTask:
        body = {"title": title, "prompt": f"Please: {title}", "required_capabilities": capabilities}
        reply = self._http.post("/api/v1/tasks", json=body)
        assert reply.status_code == 201, reply.text
        return OriginalTask(reply.json())

    def get(self, task_id: str) -> OriginalTask:
        reply = self._http.get(f"/api/v1/tasks/{task_id}")
        assert reply.status_code == 200, reply.text
        return OriginalTask(reply.json())

    def assign(self, task_id: str, agent_id: str) -> OriginalTask:
        reply = self._http.post(f"/api/v1/tasks/{task_id}/assign", json={"agent_id": agent_id})
        assert reply.status_code == 200, reply.text
        return OriginalTask(reply.json())

    def retry(self, task_id: str) -> OriginalTask:
        reply = self._http.post(f"/api/v1/tasks/{task_id}/retry")
        assert reply.status_code == 200, reply.text
        return OriginalTask(reply.json())

    def list(self, status: str | None = None) -> list[OriginalTask]:
        params = {"status": status} if status else {}
        reply = self._http.get("/api/v1/tasks", params=params)
        assert reply.status_code == 200, reply.text
        return [OriginalTask(t) for t in reply.json()["tasks"]]
