"""What only the PostgreSQL store promises: parallel claimers on separate pools, migrations
that several replicas may run at once, and a gap-free global order under concurrent appends."""

import asyncio
from collections import Counter

import pytest

from agent_fleet.domain.events import TaskAssigned
from agent_fleet.domain.ids import Lease
from agent_fleet.domain.matching import Appetite
from agent_fleet.domain.states import ExecutionMode
from agent_fleet.store.postgres import PostgresEventStore
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
