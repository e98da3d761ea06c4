"""The event store in-process, against the raw SQLite limit measured in the same run.

`SqliteEventStore` (WAL, `synchronous=FULL`, as the product opens it) is driven
directly, without HTTP or services:

- appends/s: one `task.created` event per `append` (one transaction: the event
  row plus its projection row);
- claim+complete cycles/s: `claim_task` (one transaction: pick, `task.assigned`,
  projection) then `append` of the `task.completed` decided by
  `domain.task.accept_receipt` (a second transaction) — two commits a cycle.

The raw limit is the same number of single-row transactions (`BEGIN
IMMEDIATE; INSERT; COMMIT`, a 200-byte row) through the plain `sqlite3` module
on the same disk with the same settings (WAL, `synchronous=FULL`), and again
with `synchronous=NORMAL`. A claim+complete cycle's raw limit is half the raw
transaction rate (two commits).
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

from agent_fleet.domain import task as task_model
from agent_fleet.domain.ids import AgentId, TaskId
from agent_fleet.domain.policies import RetryPolicy
from agent_fleet.domain.states import ReceiptStatus
from agent_fleet.domain.values import Receipt
from agent_fleet.ports.store import EventStore
from agent_fleet.services.dequeue import PULL_MODES
from agent_fleet.services.tasks import new_lease
from agent_fleet.store.sqlite import SqliteEventStore
from bench.common import Config, Section, append_batches, new_agents, new_tasks, scratch_dir


def raw_transactions(path: Path, count: int, synchronous: str) -> float:
    """Single-row write transactions per second, WAL, the given `synchronous`."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, data TEXT NOT NULL)")
        row = "x" * 200
        started = time.perf_counter()
        for _ in range(count):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t (data) VALUES (?)", (row,))
            conn.execute("COMMIT")
        return count / (time.perf_counter() - started)
    finally:
        conn.close()


async def appends(store: EventStore, count: int) -> float:
    events = new_tasks(count, datetime.now(UTC))
    started = time.perf_counter()
    for event in events:
        await store.append([event])
    return count / (time.perf_counter() - started)


async def claim_complete(store: EventStore, count: int, agent_id: str = "bench-agent") -> float:
    """Seed `count` tasks in batches, then claim and complete them one by one."""
    now = datetime.now(UTC)
    await append_batches(store, new_agents([agent_id], now))
    await append_batches(store, new_tasks(count, now))
    return await claim_complete_loop(store, count, agent_id)


async def claim_complete_loop(store: EventStore, count: int, agent_id: str) -> float:
    """Claim and complete `count` waiting tasks one by one, as `agent_id`; cycles/s."""
    agent = await store.get_agent(AgentId(agent_id))
    assert agent is not None
    policy = RetryPolicy()
    started = time.perf_counter()
    for _ in range(count):
        now = datetime.now(UTC)
        task = await store.claim_task(agent, PULL_MODES, new_lease(), now)
        assert task is not None
        receipt = Receipt(
            task_id=TaskId(task.task_id),
            agent_id=agent.agent_id,
            status=ReceiptStatus.COMPLETED,
            lease=task.lease,
        )
        await store.append(task_model.accept_receipt(task, receipt, now, agent_id, policy))
    return count / (time.perf_counter() - started)


def _store_run(path: Path, synchronous: str, count: int, what: str) -> float:
    async def main() -> float:
        store = SqliteEventStore(path, synchronous=synchronous)
        try:
            await store.migrate()
            if what == "append":
                return await appends(store, count)
            return await claim_complete(store, count)
        finally:
            await store.close()

    return asyncio.run(main())


def bench(cfg: Config) -> Section:
    section = Section("store", "Event store in-process (SQLite) vs raw SQLite transactions")
    count = cfg.pick(2000, 300)
    tmp = scratch_dir("store")
    results: dict[str, list[float]] = {
        k: []
        for k in ("append", "cycle", "append_normal", "cycle_normal", "raw_full", "raw_normal")
    }
    try:
        for run in range(cfg.runs):
            d = tmp / f"run{run}"
            d.mkdir()
            results["raw_full"].append(raw_transactions(d / "raw_full.db", count, "FULL"))
            results["raw_normal"].append(raw_transactions(d / "raw_normal.db", count, "NORMAL"))
            results["append"].append(_store_run(d / "a.db", "FULL", count, "append"))
            results["cycle"].append(_store_run(d / "c.db", "FULL", count, "cycle"))
            results["append_normal"].append(_store_run(d / "an.db", "NORMAL", count, "append"))
            results["cycle_normal"].append(_store_run(d / "cn.db", "NORMAL", count, "cycle"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    section.add(
        "append", "store appends/s (1 event + projection), FULL", "appends/s", results["append"]
    )
    section.add(
        "claim_complete", "store claim+complete cycles/s, FULL", "cycles/s", results["cycle"]
    )
    section.add(
        "raw_full", "raw single-row transactions/s, WAL + FULL", "tx/s", results["raw_full"]
    )
    section.add(
        "raw_full_cycle",
        "raw 2-commit limit (raw FULL tx/s ÷ 2)",
        "cycles/s",
        [x / 2 for x in results["raw_full"]],
    )
    section.add("append_normal", "store appends/s, NORMAL", "appends/s", results["append_normal"])
    section.add(
        "claim_complete_normal",
        "store claim+complete cycles/s, NORMAL",
        "cycles/s",
        results["cycle_normal"],
    )
    section.add(
        "raw_normal", "raw single-row transactions/s, WAL + NORMAL", "tx/s", results["raw_normal"]
    )
    section.notes.append(
        f"{cfg.runs} runs of {count} operations each, fresh database files each run, "
        f"on {tmp.parent} (BENCH_SCRATCH)."
    )
    return section
