"""A pull agent for fault injection, run as its own process.

It registers, heartbeats from a thread, and loops dequeue → running → (work) →
complete. Unlike tests/e2e/pull_agent.py it survives a server that dies under
it: connection errors and 5xx are retried until a deadline, and a refusal (4xx)
is recorded and ends only that task, never the agent. When it stops it prints
one JSON line: what it did and every refusal it met, so the test can check
that a refusal was the fence doing its job.

    chaos_agent.py URL TOKEN AGENT_ID [--work SECS] [--once] [--stop-file PATH]
                   [--hold-until PATH]
"""

import argparse
import contextlib
import json
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

RETRY_FOR_SECS = 180.0  # a restart on a starved machine can take a while


class Api:
    def __init__(self, url: str, token: str) -> None:
        self.http = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=15
        )
        self.lock = threading.Lock()
        self.transport_errors = 0

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        """Send until the server answers below 500 (or the deadline passes)."""
        deadline = time.monotonic() + RETRY_FOR_SECS
        while True:
            try:
                reply = self.http.post(path, json=body)
            except httpx.HTTPError:
                with self.lock:
                    self.transport_errors += 1
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
                continue
            if reply.status_code >= 500 and time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            return reply


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("token")
    parser.add_argument("agent_id")
    parser.add_argument("--work", type=float, default=0.0, help="max seconds of 'work' per task")
    parser.add_argument("--once", action="store_true", help="exit after one task")
    parser.add_argument("--stop-file", type=Path, default=None)
    parser.add_argument(
        "--hold-until", type=Path, default=None, help="after starting, wait for this file"
    )
    args = parser.parse_args()

    api = Api(args.url, args.token)
    agent_id: str = args.agent_id
    report: dict[str, Any] = {"agent_id": agent_id, "completed": [], "refused": [], "held": []}
    register = {"agent_id": agent_id, "agent_type": "chaos", "max_concurrency": 1}
    api.post("/api/v1/agents/register", register).raise_for_status()
    stopping = threading.Event()

    def beat() -> None:
        while not stopping.wait(0.3):
            with contextlib.suppress(httpx.HTTPError):
                api.http.post("/api/v1/agents/heartbeat", json={"agent_id": agent_id})

    threading.Thread(target=beat, daemon=True).start()

    def refused(step: str, task_id: str, reply: httpx.Response) -> None:
        try:
            code = reply.json().get("code")
        except ValueError:
            code = None
        report["refused"].append(
            {"step": step, "task_id": task_id, "status": reply.status_code, "code": code}
        )

    while not (args.stop_file and args.stop_file.exists()):
        got = api.post("/api/v1/tasks/dequeue", {"agent_id": agent_id, "wait_secs": 0.3})
        if got.status_code == 204:
            continue
        if got.status_code == 404:  # forgotten (should not happen): register again
            api.post("/api/v1/agents/register", register)
            continue
        got.raise_for_status()
        task, lease = got.json(), got.json()["lease"]
        task_id, attempt = task["task_id"], task["attempt"]
        report["held"].append([task_id, attempt])
        print(json.dumps({"holding": task_id, "attempt": attempt}), file=sys.stderr, flush=True)
        body = {"agent_id": agent_id, "lease": lease}
        started = api.post(f"/api/v1/tasks/{task_id}/status", {**body, "state": "running"})
        if started.status_code != 200:
            refused("status", task_id, started)
            continue
        if args.work:
            time.sleep(random.uniform(args.work / 4, args.work))
        if args.hold_until:
            while not args.hold_until.exists():
                time.sleep(0.05)
            late = api.post(
                f"/api/v1/tasks/{task_id}/status",
                {**body, "state": "running", "message": "still here"},
            )
            if late.status_code != 200:
                refused("late-status", task_id, late)
        done = api.post(
            f"/api/v1/tasks/{task_id}/complete",
            {**body, "status": "completed", "summary": f"attempt {attempt} by {agent_id}"},
        )
        if done.status_code == 200 and done.json()["state"] == "completed":
            report["completed"].append([task_id, attempt])
        else:
            refused("complete", task_id, done)
        if args.once:
            break
    stopping.set()
    report["transport_errors"] = api.transport_errors
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
