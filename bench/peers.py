"""Peers, same work, same run: N no-op jobs through enqueue → dequeue → complete.

For each system one worker is started first; then a producer enqueues N jobs
one by one (a transaction each) while the worker dequeues, runs (a no-op) and
completes them. Rate = N / (first enqueue → last completion):

- Huey: `SqliteHuey` (its SQLite storage, WAL, SQLite's default
  `synchronous=FULL`), the real consumer with one worker thread
  (`create_consumer(workers=1, worker_type="thread")`, its default polling),
  producer in the main thread.
- Procrastinate: `PsycopgConnector`, schema applied by its `SchemaManager`, an
  async task, `run_worker_async(concurrency=1)`, `defer_async` producer.
- PgQueuer: `PsycopgDriver` over autocommit connections (worker and producer
  each their own), `Queries.install()`, an async entrypoint,
  `QueueManager.run(batch_size=10)` (LISTEN/NOTIFY wakes it on each enqueue).
- Agent Fleet in-process: a producer coroutine `append`s one `task.created`
  per job while a worker coroutine `claim_task`s and `append`s the
  `task.completed` (`accept_receipt`), on `SqliteEventStore` (FULL) and on
  `PostgresEventStore` (3 commits a job, Huey 2).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent_fleet.domain import task as task_model
from agent_fleet.domain.ids import AgentId, TaskId
from agent_fleet.domain.policies import RetryPolicy
from agent_fleet.domain.states import ReceiptStatus
from agent_fleet.domain.values import Receipt
from agent_fleet.ports.store import EventStore
from agent_fleet.services.dequeue import PULL_MODES
from agent_fleet.services.tasks import new_lease
from agent_fleet.store.postgres import PostgresEventStore
from agent_fleet.store.sqlite import SqliteEventStore
from bench.common import (
    Config,
    Section,
    append_batches,
    drop_pg_database,
    fresh_pg_database,
    new_agents,
    new_tasks,
    pg_available,
    scratch_dir,
)

SETTLE = 0.3  # the worker starts first and settles before the first enqueue

Rate = float  # jobs/s: N / (first enqueue → last completion)


async def ours(store: EventStore, count: int) -> Rate:
    now = datetime.now(UTC)
    await append_batches(store, new_agents(["bench-agent"], now))
    agent = await store.get_agent(AgentId("bench-agent"))
    assert agent is not None
    events = new_tasks(count, now)
    policy = RetryPolicy()

    async def worker() -> None:
        done = 0
        while done < count:
            now = datetime.now(UTC)
            task = await store.claim_task(agent, PULL_MODES, new_lease(), now)
            if task is None:
                await asyncio.sleep(0.001)
                continue
            receipt = Receipt(
                task_id=TaskId(task.task_id),
                agent_id=agent.agent_id,
                status=ReceiptStatus.COMPLETED,
                lease=task.lease,
            )
            await store.append(task_model.accept_receipt(task, receipt, now, "bench", policy))
            done += 1

    t0 = time.perf_counter()
    consumer = asyncio.create_task(worker())
    for event in events:
        await store.append([event])
    await consumer
    return count / (time.perf_counter() - t0)


def _ours_on(make_store: Callable[[], EventStore], count: int) -> Rate:
    async def main() -> Rate:
        store = make_store()  # inside the loop: a PostgreSQL pool belongs to it
        try:
            await store.migrate()
            return await ours(store, count)
        finally:
            await store.close()

    return asyncio.run(main())


def ours_sqlite(path: Path, count: int) -> Rate:
    return _ours_on(lambda: SqliteEventStore(path), count)


def ours_postgres(url: str, count: int) -> Rate:
    return _ours_on(lambda: PostgresEventStore(url), count)


def huey(path: Path, count: int) -> Rate:
    from huey import SqliteHuey

    app = SqliteHuey(name="bench", filename=str(path))
    done = threading.Event()
    executed = [0]

    @app.task()
    def noop() -> None:
        executed[0] += 1
        if executed[0] == count:
            done.set()

    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    consumer = app.create_consumer(workers=1, worker_type="thread", periodic=False)
    try:
        consumer.start()
        time.sleep(SETTLE)
        t0 = time.perf_counter()
        for _ in range(count):
            noop()
        if not done.wait(timeout=300):
            raise RuntimeError("huey did not drain its queue")
        return count / (time.perf_counter() - t0)
    finally:
        consumer.stop(graceful=True)
        for s, handler in saved.items():
            signal.signal(s, handler)
        app.storage.close()


def procrastinate(url: str, count: int) -> Rate:
    import procrastinate as pc

    app = pc.App(connector=pc.PsycopgConnector(conninfo=url))

    async def main() -> Rate:
        done = asyncio.Event()
        executed = [0]

        @app.task(name="noop", queue="bench")
        async def noop() -> None:
            executed[0] += 1
            if executed[0] == count:
                done.set()

        async with app.open_async():
            await app.schema_manager.apply_schema_async()
            worker = asyncio.create_task(app.run_worker_async(queues=["bench"], concurrency=1))
            await asyncio.sleep(SETTLE)
            t0 = time.perf_counter()
            for _ in range(count):
                await noop.defer_async()
            await asyncio.wait_for(done.wait(), timeout=300)
            elapsed = time.perf_counter() - t0
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
            return count / elapsed

    return asyncio.run(main())


def pgqueuer(url: str, count: int) -> Rate:
    import psycopg
    from pgqueuer import PsycopgDriver, QueueManager
    from pgqueuer.queries import Queries

    async def main() -> Rate:
        conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
        producer_conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
        try:
            queries = Queries(PsycopgDriver(conn))
            await queries.install()
            producer = Queries(PsycopgDriver(producer_conn))
            qm = QueueManager(queries)
            done = asyncio.Event()
            executed = [0]

            @qm.entrypoint("noop")
            async def noop(job: Any) -> None:
                executed[0] += 1
                if executed[0] == count:
                    done.set()

            worker = asyncio.create_task(qm.run(batch_size=10))
            await asyncio.sleep(SETTLE)
            t0 = time.perf_counter()
            for _ in range(count):
                await producer.enqueue("noop", None)
            await asyncio.wait_for(done.wait(), timeout=300)
            elapsed = time.perf_counter() - t0
            qm.shutdown.set()
            await asyncio.wait_for(worker, timeout=30)
            return count / elapsed
        finally:
            await producer_conn.close()
            await conn.close()

    return asyncio.run(main())


def _pg(fn: Callable[[str, int], Rate], count: int) -> Rate:
    url = fresh_pg_database("bench_peer")
    try:
        return fn(url, count)
    finally:
        drop_pg_database(url)


def bench(cfg: Config) -> Section:
    section = Section("peers", "Peers: enqueue → dequeue → complete of no-op jobs, one worker")
    count = cfg.pick(1000, 200)
    tmp = scratch_dir("peers")
    runs: dict[str, list[Rate]] = {}
    pg = pg_available()
    try:
        for run in range(cfg.runs):
            runs.setdefault("ours_sqlite", []).append(ours_sqlite(tmp / f"ours{run}.db", count))
            runs.setdefault("huey", []).append(huey(tmp / f"huey{run}.db", count))
            if pg:
                runs.setdefault("ours_pg", []).append(_pg(ours_postgres, count))
                runs.setdefault("procrastinate", []).append(_pg(procrastinate, count))
                runs.setdefault("pgqueuer", []).append(_pg(pgqueuer, count))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    labels = {
        "ours_sqlite": "Agent Fleet store, SQLite FULL",
        "huey": "Huey, SqliteHuey, 1 worker thread",
        "ours_pg": "Agent Fleet store, PostgreSQL",
        "procrastinate": "Procrastinate, PostgreSQL, concurrency 1",
        "pgqueuer": "PgQueuer, PostgreSQL, batch 10",
    }
    for key, rates in runs.items():
        section.add(key, labels[key], "jobs/s", rates)
    if not pg:
        section.notes.append("PostgreSQL peers skipped: no server at AGENT_FLEET_TEST_PG_URL.")
    section.notes.append(f"{cfg.runs} runs of {count} jobs each; fresh files/databases each run.")
    return section
