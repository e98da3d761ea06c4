"""Pull-cycle throughput: N concurrent agents doing dequeue → running → complete over HTTP.

The server is a real `agent-fleet serve` process (SQLite, or PostgreSQL with
one or more replicas), seeded with no-op tasks through the store before it
starts; the agents run in client processes (asyncio inside each), so client
and server do not share a GIL. In the same run, a trivial FastAPI JSON POST
served by one uvicorn worker is driven by the same client harness: the ratio
of the two request rates is the price of the pull cycle's real work.

Every run ends with a check that no (task, attempt) was assigned twice.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
from tests.e2e.server import PULL_TOKEN, ServerProcess, free_port

from bench.common import (
    Config,
    Section,
    drop_pg_database,
    duplicate_assignments_postgres,
    duplicate_assignments_sqlite,
    fresh_pg_database,
    percentile,
    pg_available,
    scratch_dir,
    seed_postgres,
    seed_sqlite,
)
from bench.http import RawClient

CALLS = ("dequeue", "status", "complete")
WARMUP = 1.5  # seconds after the client processes are spawned, before measuring
PRODUCT_HEARTBEAT = {"heartbeat_interval_secs": 30, "heartbeat_timeout_threshold": 3}


async def _agent(client: RawClient, agent_id: str, start: float, until: float) -> dict[str, Any]:
    await client.post(
        "/api/v1/agents/register",
        {"agent_id": agent_id, "agent_type": "bench", "max_concurrency": 1},
    )
    lat: dict[str, list[float]] = {c: [] for c in CALLS}
    cycles = 0
    while time.monotonic() < until:
        t0 = time.perf_counter()
        status, got = await client.post(
            "/api/v1/tasks/dequeue", {"agent_id": agent_id, "wait_secs": 1}
        )
        t1 = time.perf_counter()
        if status != 200:
            continue
        task_id, lease = got["task_id"], got["lease"]
        await client.post(
            f"/api/v1/tasks/{task_id}/status",
            {"agent_id": agent_id, "lease": lease, "state": "running"},
        )
        t2 = time.perf_counter()
        status, done = await client.post(
            f"/api/v1/tasks/{task_id}/complete",
            {"agent_id": agent_id, "lease": lease, "status": "completed"},
        )
        t3 = time.perf_counter()
        if status != 200:
            raise RuntimeError(f"complete answered {status}: {done}")
        if start <= time.monotonic() <= until:
            lat["dequeue"].append(t1 - t0)
            lat["status"].append(t2 - t1)
            lat["complete"].append(t3 - t2)
            cycles += 1
    return {"cycles": cycles, "lat": lat}


async def _poster(client: RawClient, agent_id: str, start: float, until: float) -> dict[str, Any]:
    """The baseline's client: one trivial JSON POST after another."""
    lat: list[float] = []
    body = {"agent_id": agent_id, "lease": "0" * 32, "status": "completed", "summary": "noop"}
    while time.monotonic() < until:
        t0 = time.perf_counter()
        status, _ = await client.post("/echo", body)
        t1 = time.perf_counter()
        if status != 200:
            raise RuntimeError(f"trivial POST answered {status}")
        if start <= time.monotonic() <= until:
            lat.append(t1 - t0)
    return {"cycles": len(lat), "lat": {"post": lat}}


async def _client_main(
    kind: str, urls: list[str], ids: list[str], start: float, until: float
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {PULL_TOKEN}"}
    # One connection per agent; agent n talks to replica n mod R.
    clients = [RawClient(urls[n % len(urls)], headers) for n in range(len(ids))]
    worker = _agent if kind == "pull" else _poster
    try:
        results = await asyncio.gather(
            *(worker(clients[n], i, start, until) for n, i in enumerate(ids))
        )
    finally:
        for client in clients:
            await client.close()
    merged: dict[str, Any] = {"cycles": 0, "lat": {}}
    for r in results:
        merged["cycles"] += r["cycles"]
        for name, values in r["lat"].items():
            merged["lat"].setdefault(name, []).extend(values)
    return merged


def _client_process(args: tuple[str, list[str], list[str], float, float]) -> dict[str, Any]:
    return asyncio.run(_client_main(*args))


def _cpu_secs(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        times = psutil.Process(pid).cpu_times()
        total += times.user + times.system
    return total


def drive(
    kind: str,
    urls: list[str],
    agents: int,
    seconds: float,
    processes: int = 2,
    server_pids: list[int] | None = None,
) -> dict:
    """Run `agents` concurrent clients for `seconds` (after a warm-up); merged counts.

    With `server_pids`, also the servers' CPU seconds in the measured window: on a
    shared machine, CPU per request is the figure that other load disturbs least."""
    procs = min(processes, agents)
    ids = [f"bench-{n}" for n in range(agents)]
    start = time.monotonic() + WARMUP
    until = start + seconds
    chunks = [(kind, urls, ids[p::procs], start, until) for p in range(procs)]
    cpu = None
    with multiprocessing.get_context("spawn").Pool(procs) as pool:
        pending = pool.map_async(_client_process, chunks)
        if server_pids:
            time.sleep(max(0.0, start - time.monotonic()))
            cpu0 = _cpu_secs(server_pids)
            time.sleep(max(0.0, until - time.monotonic()))
            cpu = _cpu_secs(server_pids) - cpu0
        parts = pending.get()
    merged: dict[str, Any] = {"cycles": sum(p["cycles"] for p in parts), "lat": {}}
    for p in parts:
        for name, values in p["lat"].items():
            merged["lat"].setdefault(name, []).extend(values)
    merged["per_sec"] = merged["cycles"] / seconds
    if cpu is not None and merged["cycles"]:
        merged["server_cpu_ms"] = 1000 * cpu / merged["cycles"]
    return merged


def _summary(result: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"cycles": result["cycles"], "per_sec": round(result["per_sec"], 1)}
    if "server_cpu_ms" in result:
        out["server_cpu_ms"] = round(result["server_cpu_ms"], 3)
    for name, values in result["lat"].items():
        if values:
            out[f"{name}_p50_ms"] = round(percentile(values, 50) * 1000, 2)
            out[f"{name}_p99_ms"] = round(percentile(values, 99) * 1000, 2)
    return out


def run(
    agents: int,
    seconds: float,
    processes: int = 2,
    db_url: str | None = None,
    replicas: int = 1,
    windows: int = 1,
) -> list[dict[str, Any]]:
    """One server set-up, `windows` measured runs on it; each row has its duplicate check."""
    tmp = scratch_dir("pull")
    tasks = int(windows * (seconds + WARMUP + 1) * 700) + 200
    if db_url:
        seed_postgres(db_url, tasks)
    else:
        seed_sqlite(tmp / "r0" / "fleet.db", tasks)
    # The product's heartbeat interval, not the test suite's 1 s: liveness is written at
    # most every quarter interval, and at 1 s that was a write every ~3 cycles per agent.
    extra: dict[str, Any] = {"sweep_interval_secs": 1, **PRODUCT_HEARTBEAT}
    if db_url:
        extra["db_url"] = db_url
    servers = []
    rows = []
    try:
        for n in range(replicas):
            (tmp / f"r{n}").mkdir(exist_ok=True)
            servers.append(ServerProcess(tmp / f"r{n}", orchestrator=extra).start())
        for _ in range(windows):
            pids = [s.proc.pid for s in servers if s.proc is not None]
            result = drive("pull", [s.url for s in servers], agents, seconds, processes, pids)
            rows.append(
                {
                    "store": "postgresql" if db_url else "sqlite",
                    "replicas": replicas,
                    "agents": agents,
                    **_summary(result),
                }
            )
    finally:
        for s in servers:
            s.stop()
    assigned, dups = (
        duplicate_assignments_postgres(db_url)
        if db_url
        else duplicate_assignments_sqlite(servers[0].db_path)
    )
    for row in rows:
        row["assigned_events"] = assigned
        row["duplicate_assignments"] = dups
    _rmtree(tmp)
    return rows


def run_trivial(agents: int, seconds: float, processes: int = 2, windows: int = 1) -> list[dict]:
    port = free_port()
    proc = subprocess.Popen(  # noqa: S603 -- our own interpreter and module
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.trivial_app:app",
            "--workers",
            "1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        cwd=Path(__file__).resolve().parents[1],
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.post(f"{url}/echo", json={"agent_id": "x"}).status_code == 200:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        return [
            {
                "agents": agents,
                **_summary(drive("post", [url], agents, seconds, processes, [proc.pid])),
            }
            for _ in range(windows)
        ]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def bench(cfg: Config) -> Section:
    section = Section("pull", "HTTP pull cycle (dequeue → running → complete)")
    seconds = cfg.pick(cfg.seconds, 1.5)
    runs = cfg.runs
    section.notes.append(
        f"{runs} measured windows of {seconds} s per row, after a {WARMUP} s warm-up, on one "
        "server per row; 2 client processes; a cycle is 3 HTTP requests."
    )
    dup_total = 0
    for agents in cfg.pick((1, 16, 32, 64), (1, 16)):
        rows = run(agents, seconds, windows=runs)
        dup_total += rows[0]["duplicate_assignments"]
        section.add(
            f"sqlite_{agents}",
            f"pull cycles/s, SQLite, {agents} agents",
            "cycles/s",
            [r["per_sec"] for r in rows],
        )
        section.add(
            f"sqlite_{agents}_dequeue_p99",
            f"  dequeue p99, SQLite, {agents} agents",
            "ms",
            [r["dequeue_p99_ms"] for r in rows],
            higher_is_better=False,
        )
        section.add(
            f"sqlite_{agents}_cpu",
            f"  server CPU per cycle, SQLite, {agents} agents",
            "ms",
            [r["server_cpu_ms"] for r in rows],
            higher_is_better=False,
        )
        section.checks[f"sqlite_{agents}"] = {
            "assigned_events": rows[0]["assigned_events"],
            "duplicate_assignments": rows[0]["duplicate_assignments"],
            "rows": rows,
        }
    trivial_agents = 32 if not cfg.quick else 16
    rows = run_trivial(trivial_agents, seconds, windows=runs)
    section.add(
        "trivial_post",
        f"trivial FastAPI JSON POST req/s, 1 uvicorn worker, {trivial_agents} clients",
        "req/s",
        [r["per_sec"] for r in rows],
    )
    section.add(
        "trivial_post_cpu",
        "  server CPU per trivial POST",
        "ms",
        [r["server_cpu_ms"] for r in rows],
        higher_is_better=False,
    )
    section.checks["trivial_post"] = rows
    if pg_available():
        for replicas in cfg.pick((1, 2), (1,)):
            url = fresh_pg_database("bench_pull")
            try:
                rows = run(16, seconds, db_url=url, replicas=replicas, windows=runs)
            finally:
                drop_pg_database(url)
            dup_total += rows[0]["duplicate_assignments"]
            section.add(
                f"pg_{replicas}r_16",
                f"pull cycles/s, PostgreSQL, {replicas} replica(s), 16 agents",
                "cycles/s",
                [r["per_sec"] for r in rows],
            )
            section.checks[f"pg_{replicas}r_16"] = {
                "assigned_events": rows[0]["assigned_events"],
                "duplicate_assignments": rows[0]["duplicate_assignments"],
                "rows": rows,
            }
    else:
        section.notes.append("PostgreSQL rows skipped: no server at AGENT_FLEET_TEST_PG_URL.")
    section.checks["duplicate_assignments_total"] = dup_total
    return section


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
