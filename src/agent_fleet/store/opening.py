"""Open a store by its URL: a SQLite file (exclusively) or a PostgreSQL database.

Apart from `bootstrap` so that the `db` commands open a store without importing
the server (FastAPI, asyncssh, …): that import was a second of `db rebuild`.
"""

from pathlib import Path

from agent_fleet.domain.errors import ConfigError
from agent_fleet.ports.store import EventStore
from agent_fleet.store.sqlite import SqliteEventStore

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


async def open_store_url(url: str) -> tuple[EventStore, str]:
    """Open and migrate the store; returns it with its kind.

    SQLite is opened exclusively: one agent-fleet process per file (`DatabaseInUse`)."""
    store: EventStore
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        store, kind = SqliteEventStore(path, exclusive=True), "sqlite"
    elif url.startswith(POSTGRES_SCHEMES):
        from agent_fleet.store.postgres import PostgresEventStore  # psycopg only when asked

        store, kind = PostgresEventStore(url), "postgresql"
    else:
        scheme = url.split(":")[0]
        raise ConfigError(
            f"orchestrator.db_url: unsupported store URL scheme {scheme!r} "
            "(use sqlite:///path or postgresql://...)"
        )
    try:
        await store.migrate()
    except BaseException:
        await store.close()  # and with it the file's lock
        raise
    return store, kind


def describe_url(url: str) -> str:
    """The store's address for humans: never with a password in it."""
    scheme, _, rest = url.partition("://")
    if "@" in rest:
        rest = rest.split("@", 1)[1]
    return f"{scheme}://{rest}"
