"""One store contract, every backend: `store` and `open_store` are parametrized over BACKENDS.

A backend is the storage one test gets (a dict, a file, a schema) and the way to
open a store on it; opening twice gives two stores on the same storage (two
connections for SQL backends), which is what multi-instance races need. Adding
a backend is one class and one entry in BACKENDS.
"""

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Protocol

import pytest

from agent_fleet.ports.store import EventStore
from agent_fleet.store.postgres import PostgresEventStore
from agent_fleet.store.sqlite import SqliteEventStore
from agent_fleet.testing import InMemoryEventStore

OpenStore = Callable[[], Awaitable[EventStore]]


class Backend(Protocol):
    async def open(self) -> EventStore:
        """A migrated store on this test's storage; each call is a new instance."""
        ...


class MemoryBackend:
    """The storage is the fake itself: every open hands back the one instance."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self._store = InMemoryEventStore()

    async def open(self) -> EventStore:
        return self._store


class SqliteBackend:
    """A real file in tmp_path; each instance has its own connection and thread."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        tmp_path: Path = request.getfixturevalue("tmp_path")
        self.path = tmp_path / "contract.db"

    async def open(self) -> EventStore:
        store = SqliteEventStore(self.path)
        await store.migrate()
        return store


class PostgresBackend:
    """A fresh schema per test (tests/conftest.py); each instance has its own pool."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self.url: str = request.getfixturevalue("pg_url")

    async def open(self) -> EventStore:
        store = PostgresEventStore(self.url, min_size=1, max_size=10)
        await store.migrate()
        return store


#: Backend name → how to make its storage for one test.
BACKENDS: dict[str, Callable[[pytest.FixtureRequest], Backend]] = {
    "memory": MemoryBackend,
    "sqlite": SqliteBackend,
    "postgres": PostgresBackend,
}
#: Marks a backend's tests carry (a PostgreSQL server may be absent outside CI).
BACKEND_MARKS: dict[str, list[pytest.MarkDecorator]] = {"postgres": [pytest.mark.postgres]}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=[pytest.param(n, marks=BACKEND_MARKS.get(n, [])) for n in BACKENDS])
def backend_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def backend(backend_name: str, request: pytest.FixtureRequest) -> Backend:
    return BACKENDS[backend_name](request)


@pytest.fixture
async def open_store(backend: Backend) -> AsyncIterator[OpenStore]:
    """Opens stores on the test's storage, and closes them all, newest first, after it."""
    opened: list[EventStore] = []

    async def open_one() -> EventStore:
        store = await backend.open()
        opened.append(store)
        return store

    yield open_one
    for store in reversed(opened):
        await store.close()


@pytest.fixture
async def store(open_store: OpenStore) -> EventStore:
    return await open_store()
