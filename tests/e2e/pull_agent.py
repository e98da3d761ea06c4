"""A minimal pull agent run as its own process: dequeue → running → complete until idle.

Prints one JSON line: the task ids it completed. Used by the end-to-end claim race
and by the cycle-rate benchmark; the full runner is `agent-fleet agent`.
"""

import json
import sys

import httpx


def main(server: str, token: str, agent_id: str, capabilities: str, idle_rounds: int) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    done: list[str] = []
    with httpx.Client(base_url=server, headers=headers, timeout=30) as client:
        reply = client.post(
            "/api/v1/agents/register",
            json={
                "agent_id": agent_id,
                "agent_type": "e2e",
                "max_concurrency": 1,
                "capabilities": capabilities.split(",") if capabilities else [],
            },
        )
        reply.raise_for_status()
        idle = 0
        while idle < idle_rounds:
            got = client.post(
                "/api/v1/tasks/dequeue", json={"agent_id": agent_id, "wait_secs": 0.5}
            )
            if got.status_code == 204:
                idle += 1
                continue
            got.raise_for_status()
            idle = 0
            task_id, lease = got.json()["task"]["task_id"], got.json()["lease"]
            client.post(
                f"/api/v1/tasks/{task_id}/status",
                json={"agent_id": agent_id, "lease": lease, "state": "running"},
            ).raise_for_status()
            client.post(
                f"/api/v1/tasks/{task_id}/complete",
                json={
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
