"""What only the PostgreSQL store promises: parallel claimers on separate pools, migrations
that several replicas may run at once, a global order under concurrent appends that a
cursor reader follows without skipping, and migrating a database numbered the old way."""

import asyncio
from collections import Counter

import psycopg
import pytest

from agent_fleet.domain.errors import StoreError
from agent_fleet.domain.events import TaskAssigned
from agent_fleet.domain.ids import Lease
from agent_fleet.domain.matching import Appetite
from agent_fleet.domain.states import ExecutionMode
from agent_fleet.ports.queries import RecordedEvent
from agent_fleet.store.postgres import PostgresEventStore, _append_in_tx
from agent_fleet.store.postgres_signal import PostgresTaskSignal
from agent_fleet.store.sqlfile import load_migrations
from tests.contract.builders import agent_of, at, created, registered

pytestmark = pytest.mark.postgres
PULL = frozenset({ExecutionMode.UNDECIDED, ExecutionMode.HTTP_PULL})


def test_replicas_migrate_concurrently_and_idempotently(pg_url: str) -> None:
    async def scenario() -> list[int]:
        stores = [PostgresEventStore(pg_url) for _ in range(3)]
        applied = await asyncio.gather(*(s.migrate() for s in stores))
        again = await stores[0].migrate()
        for s in stores:
            await s.close()
        return [*applied, again]

    counts = asyncio.run(scenario())
    assert sorted(counts[:3]) == [0, 0, len(load_migrations("postgres"))] and counts[3] == 0


def test_claim_race_across_pools_is_exactly_once_and_gap_free(pg_url: str) -> None:
    tasks, claimers = 150, 8

    async def scenario() -> tuple[list[str], list[int], Counter[str]]:
        seed = PostgresEventStore(pg_url)
        await seed.migrate()
        for i in range(tasks):
            await seed.append(created(f"t{i:03}", when=i))
        for n in range(claimers):
            await seed.append(registered(f"a{n}", slots=tasks))
        # Each claimer has its own pool, as separate replicas would.
        stores = [PostgresEventStore(pg_url, max_size=2) for _ in range(claimers)]

        async def claim_all(n: int) -> list[str]:
            agent = agent_of(registered(f"a{n}", slots=tasks))
            got = []
            while task := await stores[n].claim_task(agent, PULL, Lease(f"{n}-{len(got)}"), at(1)):
                got.append(task.task_id)
            return got

        results = await asyncio.gather(*(claim_all(n) for n in range(claimers)))
        seqs = [r.seq async for r in seed.iter_events()]
        assigned = Counter(
            [
                r.event.stream_id
                async for r in seed.iter_events()
                if isinstance(r.event, TaskAssigned)
            ]
        )
        for s in [seed, *stores]:
            await s.close()
        return [t for got in results for t in got], seqs, assigned

    claimed, seqs, assigned = asyncio.run(scenario())
    assert Counter(claimed) == Counter({f"t{i:03}": 1 for i in range(tasks)})
    assert seqs == list(range(1, len(seqs) + 1)), "the global order has a gap"
    assert set(assigned.values()) == {1} and len(assigned) == tasks


def test_a_task_created_on_one_replica_wakes_a_fitting_long_poll_on_another(pg_url: str) -> None:
    """The NOTIFY says what changed: the other replica wakes a waiter that can take the
    new task, and not one that cannot."""

    async def scenario() -> tuple[bool, bool]:
        here, there = PostgresEventStore(pg_url), PostgresEventStore(pg_url)
        await here.migrate()
        signal = PostgresTaskSignal(pg_url, there.origin)
        python = signal.line_up(Appetite("py-agent", frozenset({"py"}), PULL))
        rusty = signal.line_up(Appetite("rs-agent", frozenset({"rs"}), PULL))
        stop = asyncio.Event()
        listening = asyncio.create_task(signal.run(stop))
        # Listening, its first act is to wake everyone (notices may have been missed).
        for ticket in (python, rusty):
            assert await ticket.wait(30)
            ticket.rejoin(ticket.appetite)
        await here.append(created("t1", caps=("py",)))
        python_woke = await python.wait(30)
        rusty_woke = await rusty.wait(0)  # the same notice, already acted on
        stop.set()
        await listening
        for ticket in (python, rusty):
            ticket.leave()
        await here.close()
        await there.close()
        return python_woke, rusty_woke

    assert asyncio.run(scenario()) == (True, False)


async def _reader_waits_or_is_done(
    pg_url: str, reader: "asyncio.Task[list[RecordedEvent]]"
) -> None:
    """Until the reader has returned, or a backend waits for the append lock exclusively."""
    async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
        for _ in range(3000):
            if reader.done():
                return
            row = await (
                await conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event = 'advisory' AND query LIKE '%%pg_advisory_xact_lock(%%'"
                )
            ).fetchone()
            if row and row[0]:
                return
            await asyncio.sleep(0.01)
    raise AssertionError("the reader neither returned nor waited for the append in flight")


def test_a_cursor_reader_never_skips_an_append_that_commits_late_with_a_lower_seq(
    pg_url: str,
) -> None:
    """seq is drawn before commit: an append in flight holds a lower seq than one that
    committed after it. A reader that read past the committed one and moved its cursor
    there would never see the late one; the horizon makes the reader wait for it."""

    async def scenario() -> tuple[int, int, list[int]]:
        store = PostgresEventStore(pg_url)
        await store.migrate()
        drawn: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        release = asyncio.Event()

        async def in_flight() -> None:  # an append on its own connection, not yet committed
            async with (
                await psycopg.AsyncConnection.connect(pg_url) as conn,
                conn.transaction(),
            ):
                got = await _append_in_tx(conn, created("t-late"), "test")
                drawn.set_result(got[0].seq)
                await release.wait()

        async def read(after: int) -> list[RecordedEvent]:
            return [r async for r in store.iter_events(batch=1, after=after)]

        late_append = asyncio.create_task(in_flight())
        late = await drawn
        [early] = await store.append(created("t-early"))
        reader = asyncio.create_task(read(0))
        await _reader_waits_or_is_done(pg_url, reader)
        release.set()
        await late_append
        first = await reader
        second = await read(first[-1].seq if first else 0)  # on from the reader's cursor
        await store.close()
        return late, early.seq, [r.seq for r in first + second]

    late, early, seen = asyncio.run(scenario())
    assert late < early, "the in-flight append must hold the lower seq"
    assert seen == [late, early], "the cursor reader skipped or reordered an event"


def test_appends_to_other_streams_do_not_wait_for_an_append_in_flight(pg_url: str) -> None:
    """The append lock is shared among appenders: while one append has not committed,
    appends to other streams, on other connections, commit."""

    async def scenario() -> list[str]:
        store = PostgresEventStore(pg_url)
        await store.migrate()
        async with (
            await psycopg.AsyncConnection.connect(pg_url) as conn,
            conn.transaction(),
        ):
            await _append_in_tx(conn, created("t-open"), "test")
            for n in range(3):  # would wait forever under an exclusive append lock
                await asyncio.wait_for(store.append(created(f"t{n}")), timeout=60)
            tasks, _ = await store.all_projections()
        await store.close()
        return [t.task_id for t in tasks]

    assert asyncio.run(scenario()) == ["t0", "t1", "t2"]


def test_a_database_numbered_by_the_old_counter_migrates_and_numbers_on(pg_url: str) -> None:
    """Migration 0008 replaces the counter row with a sequence that starts after it."""

    async def scenario() -> tuple[list[int], list[str]]:
        async with await psycopg.AsyncConnection.connect(pg_url, autocommit=True) as conn:
            await conn.execute(
                "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY,"
                " name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            for number, name, sql in load_migrations("postgres"):
                if number < 8:
                    await conn.execute(sql.encode())
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                        (number, name),
                    )
            # Events numbered the old way: up to 41, the counter at 41.
            await conn.execute(
                "INSERT INTO events (seq, stream, version, type, data, actor, at) VALUES"
                " (41, 'old', 1, 'task.created', '{}', 'x', now())"
            )
            await conn.execute("UPDATE event_counter SET last = 41")
        store = PostgresEventStore(pg_url)
        assert await store.migrate() == 1
        seqs = [r.seq for r in await store.append(created("t-new"))]
        tables = await store.schema()
        await store.close()
        return seqs, tables

    seqs, tables = asyncio.run(scenario())
    assert seqs == [42]
    assert not any(t.startswith("event_counter.") for t in tables)


def test_a_reader_gives_up_rather_than_hold_writers_behind_an_append_that_never_ends(
    pg_url: str,
) -> None:
    """Appends queue behind a reader waiting for the horizon: while an append is stuck
    before its commit, the reader fails (lock_timeout) and the other appends go on."""

    async def scenario() -> list[str]:
        store = PostgresEventStore(pg_url)
        await store.migrate()
        async with (
            await psycopg.AsyncConnection.connect(pg_url) as conn,
            conn.transaction(),
        ):
            await _append_in_tx(conn, created("t-stuck"), "test")
            with pytest.raises(StoreError, match="LockNotAvailable"):
                _ = [r async for r in store.iter_events()]
            await asyncio.wait_for(store.append(created("t-after")), timeout=60)
        tasks, _ = await store.all_projections()
        await store.close()
        return [t.task_id for t in tasks]

    assert asyncio.run(scenario()) == ["t-after", "t-stuck"]
