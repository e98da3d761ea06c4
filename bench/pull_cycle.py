"""Pull-cycle throughput: N concurrent agents doing dequeue → running → complete over HTTP.

The server is a real `agent-fleet serve` process on SQLite; the agents run in
client processes (asyncio inside each), so client and server do not share a GIL.
"""

import argparse
import asyncio
import json
import multiprocessing
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from tests.e2e.server import ADMIN_TOKEN, PULL_TOKEN, ServerProcess

CALLS = ("dequeue", "status", "complete")


async def _agent(client: httpx.AsyncClient, agent_id: str, until: float) -> dict[str, Any]:
    await client.post(
        "/api/v1/agents/register",
        json={"agent_id": agent_id, "agent_type": "bench", "max_concurrency": 1},
    )
    lat: dict[str, list[float]] = {c: [] for c in CALLS}
    cycles = 0
    while time.monotonic() < until:
        t0 = time.perf_counter()
        got = await client.post(
            "/api/v1/tasks/dequeue", json={"agent_id": agent_id, "wait_secs": 1}
        )
        t1 = time.perf_counter()
        if got.status_code != 200:
            continue
        task_id, lease = got.json()["task"]["task_id"], got.json()["lease"]
        await client.post(
            f"/api/v1/tasks/{task_id}/status",
            json={"agent_id": agent_id, "lease": lease, "state": "running"},
        )
        t2 = time.perf_counter()
        done = await client.post(
            f"/api/v1/tasks/{task_id}/complete",
            json={"agent_id": agent_id, "lease": lease, "status": "completed"},
        )
        t3 = time.perf_counter()
        done.raise_for_status()
        lat["dequeue"].append(t1 - t0)
        lat["status"].append(t2 - t1)
        lat["complete"].append(t3 - t2)
        cycles += 1
    return {"cycles": cycles, "lat": lat}


async def _client_main(urls: list[str], ids: list[str], until: float) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=len(ids) + 2)
    headers = {"Authorization": f"Bearer {PULL_TOKEN}"}
    clients = [
        httpx.AsyncClient(base_url=u, headers=headers, limits=limits, timeout=60) for u in urls
    ]
    try:
        # Agent n talks to replica n mod R: the load spreads over every replica.
        results = await asyncio.gather(
            *(_agent(clients[n % len(clients)], i, until) for n, i in enumerate(ids))
        )
    finally:
        for client in clients:
            await client.aclose()
    merged: dict[str, Any] = {"cycles": 0, "lat": {c: [] for c in CALLS}}
    for r in results:
        merged["cycles"] += r["cycles"]
        for c in CALLS:
            merged["lat"][c] += r["lat"][c]
    return merged


def _client_process(args: tuple[list[str], list[str], float]) -> dict[str, Any]:
    return asyncio.run(_client_main(*args))


def run(
    agents: int, seconds: float, processes: int, db_url: str | None = None, replicas: int = 1
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        extra: dict[str, Any] = {"sweep_interval_secs": 1}
        if db_url:
            extra["db_url"] = db_url
        servers = []
        for n in range(replicas):
            (Path(tmp) / f"r{n}").mkdir()
            servers.append(ServerProcess(Path(tmp) / f"r{n}", orchestrator=extra).start())
        server = servers[0]
        try:
            tasks = int(seconds * 500) + 500
            with httpx.Client(
                base_url=server.url, timeout=60, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
            ) as admin:
                for i in range(tasks):
                    admin.post("/api/v1/tasks", json={"title": f"noop {i}", "prompt": "noop"})
            procs = min(processes, agents)
            ids = [f"bench-{n}" for n in range(agents)]
            until = time.monotonic() + seconds + 1.0
            urls = [s.url for s in servers]
            chunks = [(urls, ids[p::procs], until) for p in range(procs)]
            started = time.monotonic()
            with multiprocessing.get_context("spawn").Pool(procs) as pool:
                parts = pool.map(_client_process, chunks)
            elapsed = time.monotonic() - started
        finally:
            for s in servers:
                s.stop()
    cycles = sum(p["cycles"] for p in parts)
    out: dict[str, Any] = {
        "store": "postgresql" if db_url else "sqlite",
        "replicas": replicas,
        "agents": agents,
        "cycles": cycles,
        "seconds": round(elapsed, 2),
        "cycles_per_sec": round(cycles / elapsed, 1),
    }
    for c in CALLS:
        values = sorted(x for p in parts for x in p["lat"][c])
        if values:
            out[f"{c}_p50_ms"] = round(statistics.median(values) * 1000, 2)
            out[f"{c}_p99_ms"] = round(values[int(len(values) * 0.99) - 1] * 1000, 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agents", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--db-url", default=None, help="postgresql://… (an empty database)")
    parser.add_argument("--replicas", type=int, default=1)
    args = parser.parse_args()
    result = run(args.agents, args.seconds, args.processes, args.db_url, args.replicas)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
