"""One store contract, every backend: the `store` fixture is parametrized over them."""

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from agent_fleet.ports import EventStore
from agent_fleet.store.postgres import PostgresEventStore
from agent_fleet.store.sqlite import SqliteEventStore

T = TypeVar("T")


async def _sqlite(tmp: Path) -> EventStore:
    store = SqliteEventStore(tmp / "contract.db")
    await store.migrate()
    return store


#: Backend name → factory.
BACKENDS: dict[str, Callable[[Path], Awaitable[EventStore]]] = {"sqlite": _sqlite}
PG_BACKEND = "postgres"


class Runner:
    """Runs coroutines on one event loop for the whole test (the store's loop)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def __call__(self, coro: Awaitable[T]) -> T:
        return self.loop.run_until_complete(coro)  # type: ignore[arg-type]

    def close(self) -> None:
        self.loop.close()


@pytest.fixture
def run() -> Iterator[Runner]:
    runner = Runner()
    yield runner
    runner.close()


@pytest.fixture(params=[*sorted(BACKENDS), pytest.param(PG_BACKEND, marks=pytest.mark.postgres)])
def store(request: Any, tmp_path: Path, run: Runner) -> Iterator[EventStore]:
    if request.param == PG_BACKEND:
        created: EventStore = PostgresEventStore(request.getfixturevalue("pg_url"))
        run(created.migrate())
    else:
        created = run(BACKENDS[request.param](tmp_path))
    yield created
    run(created.close())
