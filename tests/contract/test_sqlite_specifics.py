"""What only the SQLite store promises: migrations, separate connections, durability."""

import asyncio
import sqlite3
import threading
from collections import Counter
from pathlib import Path

from agent_fleet.domain.ids import Lease, TaskId
from agent_fleet.domain.states import ExecutionMode
from agent_fleet.store.sqlfile import load_migrations
from agent_fleet.store.sqlite import Q, SqliteEventStore
from tests.contract.builders import agent_of, at, created, registered

PULL = frozenset({ExecutionMode.UNDECIDED, ExecutionMode.HTTP_PULL})


def test_migrations_are_numbered_idempotent_and_match_a_fresh_install(tmp_path: Path) -> None:
    numbers = [n for n, _, _ in load_migrations("sqlite")]
    assert numbers == list(range(1, len(numbers) + 1))

    async def scenario() -> tuple[list[str], list[str], int]:
        stepwise = SqliteEventStore(tmp_path / "step.db")
        for _ in numbers:
            await stepwise.migrate()
        again = await stepwise.migrate()
        fresh = SqliteEventStore(tmp_path / "fresh.db")
        await fresh.migrate()
        result = (await stepwise.schema(), await fresh.schema(), again)
        await stepwise.close()
        await fresh.close()
        return result

    stepwise, fresh, again = asyncio.run(scenario())
    assert again == 0
    assert stepwise == fresh
    assert any("CREATE TABLE events" in sql for sql in fresh)


def test_data_survives_reopening(tmp_path: Path) -> None:
    async def write() -> None:
        store = SqliteEventStore(tmp_path / "d.db")
        await store.migrate()
        await store.append(created("t1"))
        await store.close()

    async def read() -> str | None:
        store = SqliteEventStore(tmp_path / "d.db")
        await store.migrate()
        task = await store.get_task(TaskId("t1"))
        await store.close()
        return task.title if task else None

    asyncio.run(write())
    assert asyncio.run(read()) == "title t1"
    with sqlite3.connect(tmp_path / "d.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_claim_race_across_connections_and_threads(tmp_path: Path) -> None:
    """Separate store instances (connections, threads, event loops) on one file."""
    path = tmp_path / "race.db"
    tasks, claimers = 100, 6

    async def seed() -> None:
        store = SqliteEventStore(path)
        await store.migrate()
        for i in range(tasks):
            await store.append(created(f"t{i:03}", when=i))
        for n in range(claimers):
            await store.append(registered(f"a{n}", slots=tasks))
        await store.close()

    asyncio.run(seed())
    results: dict[int, list[str]] = {}

    def claimer(n: int) -> None:
        async def loop() -> list[str]:
            store = SqliteEventStore(path)
            agent = agent_of(registered(f"a{n}", slots=tasks))
            got = []
            while task := await store.claim_task(agent, PULL, Lease(f"{n}-{len(got)}"), at(1)):
                got.append(task.task_id)
            await store.close()
            return got

        results[n] = asyncio.run(loop())

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(claimers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    claimed = Counter(t for got in results.values() for t in got)
    assert claimed == Counter({f"t{i:03}": 1 for i in range(tasks)})
    with sqlite3.connect(path) as conn:
        assigned = conn.execute(
            "SELECT count(*), count(DISTINCT stream) FROM events WHERE type = 'task.assigned'"
        ).fetchone()
    assert assigned == (tasks, tasks)


def test_rebuild_rewrites_only_the_rows_that_differ_even_in_a_column(tmp_path: Path) -> None:
    """`db rebuild` compares each stored row in its stored form (every column and the
    body's text) with the replay's: a matching row is not written again, and a row whose
    body is right but whose column is not (a queryable state the claim reads) is
    rewritten without being reported, since the stored object is the replayed one."""
    from agent_fleet.services.rebuild import rebuild

    path = tmp_path / "r.db"

    async def seed() -> None:
        store = SqliteEventStore(path)
        await store.migrate()
        for name in ("t1", "t2"):
            await store.append(created(name))
        await store.close()

    async def rebuilt(write: bool) -> list[str]:
        store = SqliteEventStore(path)
        try:
            return (await rebuild(store, write=write)).differences
        finally:
            await store.close()

    asyncio.run(seed())
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE touched (task_id TEXT)")
        for trigger in (
            "CREATE TRIGGER on_insert AFTER INSERT ON tasks "
            "BEGIN INSERT INTO touched VALUES (new.task_id); END",
            "CREATE TRIGGER on_update AFTER UPDATE ON tasks "
            "BEGIN INSERT INTO touched VALUES (new.task_id); END",
        ):
            conn.execute(trigger)
    assert asyncio.run(rebuilt(write=True)) == []
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM touched").fetchone() == (0,)
        conn.execute("UPDATE tasks SET state = 'completed' WHERE task_id = 't2'")
        conn.execute("DELETE FROM touched")
    assert asyncio.run(rebuilt(write=False)) == []  # the body holds what happened
    assert asyncio.run(rebuilt(write=True)) == []
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT task_id FROM touched").fetchall() == [("t2",)]
        assert conn.execute("SELECT state FROM tasks WHERE task_id = 't2'").fetchone() == (
            "created",
        )


def test_listing_one_agents_tasks_searches_its_rows_not_the_whole_table(tmp_path: Path) -> None:
    """The soak's drift: an agent's tasks (a heartbeat's "cancelled since") were found by
    walking every task in listing order, a cost that grew with the table."""
    path = tmp_path / "fleet.db"

    async def migrate() -> None:
        store = SqliteEventStore(path)
        await store.migrate()
        await store.close()

    asyncio.run(migrate())
    params = {
        "state": "cancelled", "agent_id": "a", "repo": None, "issue_number": None,
        "after_created": None, "after_id": None, "limit": 50,
    }  # fmt: skip
    with sqlite3.connect(path) as conn:
        plan = " ".join(
            str(row[3])
            for row in conn.execute("EXPLAIN QUERY PLAN " + Q["list_agent_tasks"], params)
        )
    assert "USING INDEX tasks_agent (agent_id=?)" in plan, plan
    assert "SCAN" not in plan, plan
