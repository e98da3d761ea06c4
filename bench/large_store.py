"""A large store: `agent-fleet db rebuild` and restart at 1,000,000 events; RSS at 100,000 tasks.

How the database is built (fast, yet every row is what the product writes):

1. A template of 1,000 tasks goes through the real `SqliteEventStore`: each is
   created, claimed by one agent, started and completed — 4 events a task,
   with their projection rows (`synchronous=OFF` while building only).
2. The template is copied with SQL (`INSERT … SELECT`): copy r gets new task
   ids (the uuid's first 8 hex digits replaced by r) in `events.stream`, in the
   event JSON and in the task rows, so replay still equals the projection.
   100 copies = 100,000 tasks (400,001 events); 250 = 1,000,001 events.

At 100,000 tasks the server's RSS is read with `psutil` after it answers
`/healthz`, the first page of `GET /api/v1/tasks`, `/metrics` and the
dashboard `/`. At 1,000,001 events `agent-fleet db rebuild` (replays every
event, compares, rewrites the projections) is timed as a subprocess, and so is
restart: process start until `GET /healthz` answers 200 (the health route of
the API; polled every 10 ms).
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
from tests.e2e.server import ADMIN_TOKEN, ServerProcess

from agent_fleet.domain import task as task_model
from agent_fleet.domain.ids import AgentId, TaskId
from agent_fleet.domain.policies import RetryPolicy
from agent_fleet.domain.states import ReceiptStatus
from agent_fleet.domain.values import Receipt
from agent_fleet.services.dequeue import PULL_MODES
from agent_fleet.services.tasks import new_lease
from agent_fleet.store.sqlite import SqliteEventStore
from bench.common import Config, Section, append_batches, new_agents, new_tasks, scratch_dir

TEMPLATE = 1000
EVENTS_PER_TASK = 4


def build_template(path: Path, tasks: int) -> None:
    async def main() -> None:
        store = SqliteEventStore(path, synchronous="OFF")
        try:
            await store.migrate()
            now = datetime.now(UTC)
            await append_batches(store, new_agents(["bench-agent"], now))
            await append_batches(store, new_tasks(tasks, now))
            agent = await store.get_agent(AgentId("bench-agent"))
            assert agent is not None
            for _ in range(tasks):
                now = datetime.now(UTC)
                task = await store.claim_task(agent, PULL_MODES, new_lease(), now)
                assert task is not None
                started = task_model.start(task, now, agent.agent_id)
                await store.append(started)
                task = task_model.evolve(task, started[0])
                receipt = Receipt(
                    task_id=TaskId(task.task_id),
                    agent_id=agent.agent_id,
                    status=ReceiptStatus.COMPLETED,
                    lease=task.lease,
                    summary="noop",
                )
                await store.append(
                    task_model.accept_receipt(task, receipt, now, agent.agent_id, RetryPolicy())
                )
        finally:
            await store.close()

    asyncio.run(main())


def template_top(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT max(seq) FROM events").fetchone()[0])


def copy_template(path: Path, top: int, first: int, last: int) -> None:
    """Copies first..last-1 of the template (the tasks of events up to `top`; copy 0)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("CREATE TEMP TABLE template (task_id TEXT PRIMARY KEY)")
        conn.execute(
            "INSERT INTO template SELECT DISTINCT stream FROM events "
            "WHERE seq <= ? AND type LIKE 'task.%'",
            (top,),
        )
        new = "printf('%08x', :r) || substr({col}, 9)"
        ev_id, task_id = new.format(col="stream"), new.format(col="task_id")
        copy_events = (
            "INSERT INTO events (stream, version, type, data, actor, at) "  # noqa: S608
            f"SELECT {ev_id}, version, type, replace(data, stream, {ev_id}), actor, at "
            "FROM events WHERE seq <= :top AND stream IN (SELECT task_id FROM template) "
            "ORDER BY seq"
        )
        copy_tasks = (
            "INSERT INTO tasks (task_id, version, state, agent_id, execution_mode, priority, "  # noqa: S608
            "required_capabilities, repo, created_at, deadline_at, retry_at, body) "
            f"SELECT {task_id}, version, state, agent_id, execution_mode, "
            "priority, required_capabilities, repo, created_at, deadline_at, retry_at, "
            f"replace(body, task_id, {task_id}) "
            "FROM tasks WHERE task_id IN (SELECT task_id FROM template)"
        )
        for r in range(first, last):
            conn.execute("BEGIN")
            conn.execute(copy_events, {"r": r, "top": top})
            conn.execute(copy_tasks, {"r": r})
            conn.execute("COMMIT")
    finally:
        conn.close()


def counts(path: Path) -> tuple[int, int]:
    with sqlite3.connect(path) as conn:
        events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        tasks = conn.execute("SELECT count(*) FROM tasks").fetchone()[0]
    return int(events), int(tasks)


def start_timed(server: ServerProcess) -> float:
    """Seconds from process start until /healthz answers 200."""
    server.write_config()
    with server.log_path.open("ab") as log:
        started = time.perf_counter()
        server.proc = subprocess.Popen(  # noqa: S603 -- our own interpreter and module
            [sys.executable, "-m", "agent_fleet", "serve", "--config", str(server.config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=server.workdir,
        )
    deadline = started + 60
    with httpx.Client(timeout=5) as client:
        while time.perf_counter() < deadline:
            if server.proc.poll() is not None:
                raise RuntimeError(f"server exited:\n{server.log_path.read_text()[-2000:]}")
            try:
                if client.get(f"{server.url}/healthz").status_code == 200:
                    return time.perf_counter() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.01)
    raise RuntimeError("server did not become healthy")


def rss_after_use(server: ServerProcess) -> float:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with httpx.Client(base_url=server.url, timeout=60, headers=headers) as client:
        for path in ("/healthz", "/api/v1/tasks?limit=100", "/metrics", "/"):
            client.get(path).raise_for_status()
    assert server.proc is not None
    return psutil.Process(server.proc.pid).memory_info().rss / 2**20


def rebuild(server: ServerProcess) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(  # noqa: S603 -- our own interpreter and module
        [sys.executable, "-m", "agent_fleet", "db", "rebuild", "--config", str(server.config_path)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=server.workdir,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"db rebuild failed: {done.stdout}{done.stderr}")
    return elapsed, done.stdout.strip()


def bench(cfg: Config) -> Section:
    rss_tasks = cfg.pick(100_000, 5_000)
    big_events = cfg.pick(1_000_000, 20_000)
    template = min(TEMPLATE, rss_tasks)
    section = Section("large", f"Large store: {big_events:,} events, {rss_tasks:,} tasks")
    tmp = scratch_dir("large")
    server = ServerProcess(tmp, orchestrator={"sweep_interval_secs": 1.0})
    checks: dict[str, Any] = {}
    try:
        t0 = time.perf_counter()
        build_template(server.db_path, template)
        top = template_top(server.db_path)
        copy_template(server.db_path, top, 1, rss_tasks // template)
        checks["build_100k_secs"] = round(time.perf_counter() - t0, 1)
        checks["at_rss"] = counts(server.db_path)
        rss: list[float] = []
        for _ in range(cfg.runs):
            start_timed(server)
            rss.append(rss_after_use(server))
            server.stop()
        t0 = time.perf_counter()
        copy_template(
            server.db_path, top, rss_tasks // template, big_events // (template * EVENTS_PER_TASK)
        )
        checks["extend_secs"] = round(time.perf_counter() - t0, 1)
        events, tasks = counts(server.db_path)
        checks["at_rebuild"] = (events, tasks)
        with sqlite3.connect(server.db_path) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        checks["db_mb"] = round(server.db_path.stat().st_size / 2**20, 1)
        rebuilds: list[float] = []
        for _ in range(cfg.runs):
            elapsed, out = rebuild(server)
            rebuilds.append(elapsed)
            checks["rebuild_output"] = out
        restarts: list[float] = []
        big_rss: list[float] = []
        for _ in range(cfg.runs):
            restarts.append(start_timed(server))
            big_rss.append(rss_after_use(server))
            server.stop()
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    section.add(
        "rebuild_secs",
        f"`agent-fleet db rebuild`, {events:,} events / {tasks:,} tasks",
        "s",
        rebuilds,
        higher_is_better=False,
    )
    section.add(
        "restart_secs",
        f"restart until /healthz answers, {events:,} events",
        "s",
        restarts,
        higher_is_better=False,
    )
    section.add(
        "rss_mb", f"server RSS with {rss_tasks:,} tasks", "MiB", rss, higher_is_better=False
    )
    section.add(
        "rss_big_mb", f"server RSS with {tasks:,} tasks", "MiB", big_rss, higher_is_better=False
    )
    section.checks = checks
    section.notes.append(
        f"built in {checks['build_100k_secs']} s + {checks['extend_secs']} s "
        f"(template through the store, then SQL copies); database {checks['db_mb']} MiB."
    )
    return section
