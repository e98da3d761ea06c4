"""Heartbeat scale: 10,000 registered pull agents beating every 60 s.

The agents are registered through the store before the server starts (events,
projections and a fresh heartbeat row each: `bench.common.seed_sqlite`). The
server runs with `heartbeat_interval_secs = 60` and the product's
`sweep_interval_secs = 1`, so the liveness sweep scans all 10,000 agents every
second. Beats arrive at the real rate, 10,000 / 60 s ≈ 167/s, evenly spaced and
round-robin over the agents, each on a new connection as an agent beating once
a minute would open one (keep-alive expires after 5 s in both httpx and
uvicorn); the body is the one `agent-fleet agent` sends (`running_tasks: []`).
Each window is shorter than 60 s (the rate, not the duration, is what costs);
the server's CPU is `psutil` `cpu_times()` (user + system) of its pid over
the window, as a percentage of one core. An idle window (no beats, sweeps only)
is measured too.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from typing import Any

import psutil
from tests.e2e.server import PULL_TOKEN, ServerProcess

from bench.common import Config, Section, percentile, scratch_dir, seed_sqlite
from bench.http import RawClient

INTERVAL_SECS = 60


def _cpu(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


async def _beats(url: str, ids: list[str], offset: int, rate: float, seconds: float) -> dict:
    lat: list[float] = []
    errors = 0

    async def beat(agent_id: str) -> None:
        nonlocal errors
        client = RawClient(url, {"Authorization": f"Bearer {PULL_TOKEN}"})
        try:
            t0 = time.perf_counter()
            status, _ = await client.post(
                "/api/v1/agents/heartbeat", {"agent_id": agent_id, "running_tasks": []}
            )
            lat.append(time.perf_counter() - t0)
            if status != 200:
                errors += 1
        finally:
            await client.close()

    started = time.monotonic()
    pending = []
    k = 0
    while k / rate < seconds:
        delay = started + k / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        pending.append(asyncio.create_task(beat(ids[(offset + k) % len(ids)])))
        k += 1
    await asyncio.gather(*pending)
    return {"beats": k, "lat": lat, "errors": errors}


def bench(cfg: Config) -> Section:
    agents = cfg.pick(10_000, 2_000)
    seconds = cfg.pick(15.0, 3.0)
    rate = agents / INTERVAL_SECS
    section = Section("heartbeat", f"Heartbeat scale: {agents:,} agents at {INTERVAL_SECS} s")
    tmp = scratch_dir("heartbeat")
    ids = [f"hb-{n:05d}" for n in range(agents)]
    seed_sqlite(tmp / "fleet.db", agents=ids)
    server = ServerProcess(
        tmp,
        orchestrator={
            "heartbeat_interval_secs": INTERVAL_SECS,
            "heartbeat_timeout_threshold": 3,
            "sweep_interval_secs": 1.0,
        },
    ).start()
    windows: list[dict[str, Any]] = []
    idle: list[float] = []
    try:
        assert server.proc is not None
        proc = psutil.Process(server.proc.pid)
        time.sleep(1.0)
        for run in range(cfg.runs):
            c0, w0 = _cpu(proc), time.monotonic()
            time.sleep(cfg.pick(5.0, 2.0))
            idle.append((_cpu(proc) - c0) / (time.monotonic() - w0) * 100)
            c0, w0 = _cpu(proc), time.monotonic()
            result = asyncio.run(_beats(server.url, ids, run * int(rate * seconds), rate, seconds))
            wall = time.monotonic() - w0
            windows.append(
                {
                    "beats": result["beats"],
                    "errors": result["errors"],
                    "cpu_pct": (_cpu(proc) - c0) / wall * 100,
                    "p50_ms": percentile(result["lat"], 50) * 1000,
                    "p99_ms": percentile(result["lat"], 99) * 1000,
                    "rss_mb": proc.memory_info().rss / 2**20,
                }
            )
    finally:
        server.stop()
    import sqlite3

    with sqlite3.connect(tmp / "fleet.db") as conn:
        went_offline = conn.execute(
            "SELECT count(*) FROM events WHERE type = 'agent.offline'"
        ).fetchone()[0]
    shutil.rmtree(tmp, ignore_errors=True)
    section.add(
        "cpu_pct",
        "server CPU while beating",
        "% of a core",
        [w["cpu_pct"] for w in windows],
        higher_is_better=False,
    )
    section.add(
        "idle_cpu_pct", "server CPU idle (sweeps only)", "% of a core", idle, higher_is_better=False
    )
    section.add(
        "p99_ms",
        "heartbeat p99 latency",
        "ms",
        [w["p99_ms"] for w in windows],
        higher_is_better=False,
    )
    section.add(
        "p50_ms",
        "heartbeat p50 latency",
        "ms",
        [w["p50_ms"] for w in windows],
        higher_is_better=False,
    )
    section.notes.append(
        f"{cfg.runs} windows of {seconds} s at {rate:.0f} beats/s (= {agents:,} agents / "
        f"{INTERVAL_SECS} s), a new connection per beat; idle windows between them."
    )
    section.checks = {
        "windows": windows,
        "errors": sum(w["errors"] for w in windows),
        "agents_gone_offline": went_offline,
    }
    return section
