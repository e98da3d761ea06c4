"""A minimal pull agent run as its own process: dequeue → running → complete until idle.

Servers may be a comma-separated list of replicas: each call goes to one at
random, and a call that fails on one (a replica killed mid-test) is retried on
another. Prints one JSON line: the task ids it completed. Used by the
end-to-end claim races and the cycle benchmark; the full runner is `agent-fleet agent`.
"""

import json
import random
import sys
import time
from typing import Any

import httpx


class Replicas:
    def __init__(self, servers: list[str], token: str) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        self.clients = [httpx.Client(base_url=s, headers=headers, timeout=30) for s in servers]

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        deadline = time.monotonic() + 60
        while True:
            client = random.choice(self.clients)
            try:
                reply = client.post(path, json=body)
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
                continue
            if reply.status_code >= 500 and time.monotonic() < deadline:
                continue
            return reply


def main(servers: str, token: str, agent_id: str, capabilities: str, idle_rounds: int) -> None:
    api = Replicas(servers.split(","), token)
    done: list[str] = []
    caps = capabilities.split(",") if capabilities else []
    api.post(
        "/api/v1/agents/register",
        {"agent_id": agent_id, "agent_type": "e2e", "max_concurrency": 1, "capabilities": caps},
    ).raise_for_status()
    idle = 0
    while idle < idle_rounds:
        got = api.post("/api/v1/tasks/dequeue", {"agent_id": agent_id, "wait_secs": 0.5})
        if got.status_code == 204:
            idle += 1
            continue
        got.raise_for_status()
        idle = 0
        task_id, lease = got.json()["task_id"], got.json()["lease"]
        api.post(
            f"/api/v1/tasks/{task_id}/status",
            {"agent_id": agent_id, "lease": lease, "state": "running"},
        ).raise_for_status()
        api.post(
            f"/api/v1/tasks/{task_id}/complete",
            {
                "agent_id": agent_id,
                "lease": lease,
                "status": "completed",
                "summary": f"done by {agent_id}",
            },
        ).raise_for_status()
        done.append(task_id)
    print(json.dumps(done))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
