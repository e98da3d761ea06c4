"""Soak: pull-cycle throughput minute by minute while agents die and re-register.

A real `agent-fleet serve` (SQLite) seeded with enough no-op tasks; 48 agents in
two client processes each live a few cycles (dequeue → running → complete), then
die without a word — some holding a task they never finish — and come back under
a new id, as crashing agent processes do. The dead stay registered (offline after
the heartbeat timeout; their tasks are taken back by the sweep), so the store
fills with dead agents as the run goes on. Throughput and the server's CPU per
cycle are reported per bucket (a minute by default): a flat run has the last
bucket about as fast as the first.

`python -m bench --only soak` (10 minutes; `--seconds` sets the duration) or
`python -m bench.soak --minutes 2 --bucket 20` while iterating.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import random
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

import psutil
from tests.e2e.server import PULL_TOKEN, ServerProcess

from bench.common import Config, Section, scratch_dir, seed_sqlite
from bench.http import RawClient

AGENTS = 48
LIFE_CYCLES = (5, 20)  # cycles an agent lives, uniformly
DIE_HOLDING = 0.2  # share of deaths that leave a dequeued task unfinished
HEARTBEAT_SECS = 5  # offline after 3 silent intervals: the sweep sees the dead during the run
WARMUP = 5.0  # spawning the client processes takes seconds on a busy machine


async def _agent(
    url: str, slot: str, start: float, until: float, seed: int
) -> tuple[list[float], list[float]]:
    """One agent slot: lives, dies, re-registers under a new id, until `until`."""
    rng = random.Random(seed)  # noqa: S311 -- a load pattern, not a secret
    headers = {"Authorization": f"Bearer {PULL_TOKEN}"}
    done: list[float] = []
    empty: list[float] = []  # dequeues that came back with nothing, and tasks lost
    taken: list[float] = []  # tasks taken back from this live agent (409 stale lease)
    generation = 0
    while time.monotonic() < until:
        agent_id = f"soak-{slot}-{generation}"
        generation += 1
        client = RawClient(url, headers)
        try:
            await client.post(
                "/api/v1/agents/register",
                {"agent_id": agent_id, "agent_type": "soak", "max_concurrency": 1},
            )
            life = rng.randint(*LIFE_CYCLES)
            for n in range(life):
                if time.monotonic() >= until:
                    break
                status, got = await client.post(
                    "/api/v1/tasks/dequeue", {"agent_id": agent_id, "wait_secs": 1}
                )
                if status != 200:
                    empty.append(time.monotonic())
                    continue
                if n == life - 1 and rng.random() < DIE_HOLDING:
                    break  # dies holding it: the sweep takes it back once it is offline
                task_id, lease = got["task_id"], got["lease"]
                status, body = await client.post(
                    f"/api/v1/tasks/{task_id}/status",
                    {"agent_id": agent_id, "lease": lease, "state": "running"},
                )
                if status == 200:
                    status, body = await client.post(
                        f"/api/v1/tasks/{task_id}/complete",
                        {"agent_id": agent_id, "lease": lease, "status": "completed"},
                    )
                if status == 409:
                    # Taken back: on a starved server this agent (liveness is written by
                    # its dequeues only) looked silent past the 15 s timeout.
                    taken.append(time.monotonic())
                    continue
                if status != 200:
                    raise RuntimeError(f"status/complete answered {status}: {body}")
                now = time.monotonic()
                if start <= now <= until:
                    done.append(now)
        finally:
            await client.close()  # dies: no deregistration, no further heartbeat
    return done, empty + taken


async def _client_main(
    url: str, slots: list[str], start: float, until: float
) -> tuple[list[float], list[float]]:
    lives = await asyncio.gather(*(_agent(url, s, start, until, int(s)) for s in slots))
    return [t for life in lives for t in life[0]], [t for life in lives for t in life[1]]


def _client_process(args: tuple[str, list[str], float, float]) -> tuple[list[float], list[float]]:
    return asyncio.run(_client_main(*args))


def double_assignments(db_path: Path) -> tuple[int, int]:
    """(task.assigned events, assignments made while the task's previous one was still live).

    Agents here die holding tasks, which the sweep releases: a released, unstarted task
    is assigned again under the same attempt number, legitimately. A double assignment is
    one that follows another with only the holder's own progress in between."""
    live_only = {"task.started", "task.progress"}
    total = doubles = 0
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute(
            "SELECT stream, type FROM events WHERE stream IN "
            "(SELECT stream FROM events WHERE type = 'task.assigned' "
            " GROUP BY stream HAVING count(*) > 1) ORDER BY stream, version"
        )
        total = conn.execute("SELECT count(*) FROM events WHERE type = 'task.assigned'").fetchone()[
            0
        ]
        stream, held = None, False
        for name, kind in rows:
            if name != stream:
                stream, held = name, False
            if kind == "task.assigned":
                doubles += held
                held = True
            elif kind not in live_only:
                held = False
    return int(total), doubles


def _per_bucket(times: list[float], start: float, bucket: float, buckets: int) -> list[int]:
    counts = [0] * buckets
    for t in times:
        k = int((t - start) // bucket)
        if 0 <= k < buckets:
            counts[k] += 1
    return counts


def _cpu(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def run(seconds: float, bucket: float, agents: int = AGENTS) -> dict[str, Any]:
    """One soak of `seconds` after a warm-up; per-bucket throughput and server CPU."""
    tmp = scratch_dir("soak")
    seed_sqlite(tmp / "fleet.db", int(seconds * 150) + 2000)
    server = ServerProcess(
        tmp,
        orchestrator={
            "sweep_interval_secs": 1,
            "heartbeat_interval_secs": HEARTBEAT_SECS,
            "heartbeat_timeout_threshold": 3,
        },
    ).start()
    try:
        assert server.proc is not None
        pid = server.proc.pid
        start = time.monotonic() + WARMUP
        until = start + seconds
        slots = [f"{n}" for n in range(agents)]
        chunks = [(server.url, slots[p::2], start, until) for p in range(2)]
        edges = [start + bucket * k for k in range(int(seconds // bucket) + 1)]
        cpu_at: list[float] = []
        with multiprocessing.get_context("spawn").Pool(2) as pool:
            pending = pool.map_async(_client_process, chunks)
            for edge in edges:
                time.sleep(max(0.0, edge - time.monotonic()))
                cpu_at.append(_cpu(pid))
            parts = pending.get()
        counts = _per_bucket([t for part in parts for t in part[0]], start, bucket, len(edges) - 1)
        empties = _per_bucket([t for part in parts for t in part[1]], start, bucket, len(edges) - 1)
        buckets = [
            {
                "from_secs": round(bucket * k),
                "cycles_per_sec": round(c / bucket, 1),
                "empty_or_lost": empties[k],
                "server_cpu_ms_per_cycle": round(1000 * (cpu_at[k + 1] - cpu_at[k]) / c, 2)
                if c
                else None,
            }
            for k, c in enumerate(counts)
        ]
        with sqlite3.connect(server.db_path) as conn:
            agents_by_status = dict(conn.execute("SELECT status, count(*) FROM agents GROUP BY 1"))
            tasks_by_state = dict(conn.execute("SELECT state, count(*) FROM tasks GROUP BY 1"))
            events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        rss_mb = psutil.Process(pid).memory_info().rss / 2**20
    finally:
        server.stop()
    assigned, dups = double_assignments(server.db_path)
    shutil.rmtree(tmp, ignore_errors=True)
    first, last = buckets[0]["cycles_per_sec"], buckets[-1]["cycles_per_sec"]
    return {
        "buckets": buckets,
        "first": first,
        "last": last,
        "last_over_first": round(last / first, 2) if first else None,
        "agents_by_status": agents_by_status,
        "tasks_by_state": tasks_by_state,
        "events": events,
        "server_rss_mb": round(rss_mb),
        "assigned_events": assigned,
        "duplicate_assignments": dups,
    }


def bench(cfg: Config) -> Section:
    section = Section("soak", "pull cycles over time with agents dying and re-registering")
    # --seconds sets the whole soak here (default 10 minutes; --quick: 1 minute).
    seconds = cfg.pick(600.0 if cfg.seconds == Config().seconds else cfg.seconds, 60.0)
    bucket = 60.0 if seconds >= 300 else seconds / 5
    result = run(seconds, bucket)
    section.notes.append(
        f"one soak of {seconds:.0f} s in {bucket:.0f} s buckets; {AGENTS} agents each living "
        f"{LIFE_CYCLES[0]}–{LIFE_CYCLES[1]} cycles, then dying (some holding a task) and "
        f"registering anew; heartbeat {HEARTBEAT_SECS} s; figures are single runs."
    )
    section.add("first", "cycles/s, first bucket", "cycles/s", [result["first"]])
    section.add("last", "cycles/s, last bucket", "cycles/s", [result["last"]])
    if result["last_over_first"] is not None:
        section.add("ratio", "last ÷ first bucket", "×", [result["last_over_first"]])
    cpu = [b["server_cpu_ms_per_cycle"] for b in result["buckets"]]
    if cpu[0] and cpu[-1]:
        section.add(
            "cpu_first", "server CPU per cycle, first bucket", "ms", [cpu[0]],
            higher_is_better=False,
        )  # fmt: skip
        section.add(
            "cpu_last", "server CPU per cycle, last bucket", "ms", [cpu[-1]],
            higher_is_better=False,
        )  # fmt: skip
    dead = sum(n for s, n in result["agents_by_status"].items() if s != "online")
    section.add("dead_agents", "agents not online at the end", "agents", [dead])
    section.checks["soak"] = result
    return section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--bucket", type=float, default=60, help="seconds per bucket")
    parser.add_argument("--agents", type=int, default=AGENTS)
    args = parser.parse_args()
    print(json.dumps(run(args.minutes * 60, args.bucket, args.agents), indent=2))


if __name__ == "__main__":
    main()
