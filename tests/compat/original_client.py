"""An agent (and its operator) written from the original Agent Fleet's documents alone.

What it knows is what the original documents, and nothing of ours. The sources
(forge `https://git.0x08.org/zer4tul/agent-fleet`, quoted with their commits in
docs/migrating-from-the-original.md):

- `skill/SKILL.md` quick start (commit 1f351a1734): register `POST /api/v1/agents/register`
  with `{"agent_id":"my-agent","agent_type":"openclaw","hostname":"myhost",
  "capabilities":["code:rust"],"max_concurrency":2}` and no Authorization, then "save your
  agent_id and registry_token"; dequeue `POST /api/v1/tasks/dequeue` with
  `Authorization: Bearer <token>` and `{"agent_id","capabilities"}`; complete
  `POST /api/v1/tasks/<task_id>/complete` with `{"task_id","agent_id","status",
  "duration_seconds","summary","artifacts","error"}` and no Authorization; heartbeat
  every 60 s;
- `docs/agent-api-reference.md`: the `http_pull_token` guards exactly dequeue and
  `POST /api/v1/tasks/{task_id}/status`; with no token configured nothing is checked;
  heartbeat answers 404 for an unknown agent; errors are `{"error": "<message>"}`;
- the OpenSpec specs: dequeue "returns the task details JSON" (204 when nothing
  matches); the task's fields `task_id, title, prompt, status, assigned_agent_id,
  assigned_host, execution_mode, branch_name, pr_title, last_activity_at, review_count`;
  `POST /api/v1/tasks/{id}/assign {agent_id}` (commit 48c93e2ce9).

The `<token>` of the quick start's dequeue is the shared `http_pull_token` when the
server has one (the API reference); otherwise this agent sends the registry token it
saved (the quick start shows a Bearer header in every case). It never sends a lease,
and a reply is wrapped so that reading any name the original's task does not have
fails the test (`NotAnOriginalField`).
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
        self._http_pull_token = http_pull_token
        self.registry_token: str | None = None  # saved at registration, as the skill says

    def close(self) -> None:
        self._http.close()

    @property
    def _guarded(self) -> dict[str, str]:
        """The quick start's `Authorization: Bearer <token>`, on dequeue and status only."""
        token = self._http_pull_token or self.registry_token
        return {"Authorization": f"Bearer {token}"} if token else {}

    def register(self, capabilities: list[str], max_concurrency: int = 1) -> httpx.Response:
        body = {
            "agent_id": self.agent_id,
            "agent_type": "openclaw",
            "hostname": "myhost",
            "capabilities": capabilities,
            "max_concurrency": max_concurrency,
        }
        reply = self._http.post("/api/v1/agents/register", json=body)
        if reply.status_code == 200:
            self.registry_token = reply.json()["registry_token"]
        return reply

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
            "duration_seconds": 60,
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
        # The list's envelope is not in the parts of the original's reference that could
        # be read: `{"tasks": [...]}` is ours (docs/migrating-from-the-original.md).
        params = {"status": status} if status else {}
        reply = self._http.get("/api/v1/tasks", params=params)
        assert reply.status_code == 200, reply.text
        return [OriginalTask(t) for t in reply.json()["tasks"]]
