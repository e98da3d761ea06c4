"""What every benchmark module shares: the run settings, summaries, seeding, databases."""

from __future__ import annotations

import asyncio
import os
import platform
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import psycopg

from agent_fleet.codec import ts
from agent_fleet.domain import agent as agent_model
from agent_fleet.domain import task as task_model
from agent_fleet.domain.agent import Registration
from agent_fleet.domain.events import AnyEvent
from agent_fleet.domain.ids import AgentId
from agent_fleet.domain.states import AgentMode
from agent_fleet.domain.task import NewTask
from agent_fleet.ports.store import EventStore
from agent_fleet.services.tasks import new_task_id
from agent_fleet.store.postgres import PostgresEventStore
from agent_fleet.store.sqlite import SqliteEventStore

PG_ADMIN = os.environ.get(
    "AGENT_FLEET_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
#: Scratch files: point BENCH_SCRATCH at the disk you mean to measure (not a tmpfs,
#: where fsync is free).
SCRATCH = Path(os.environ.get("BENCH_SCRATCH", Path(tempfile.gettempdir()) / "agent-fleet-bench"))


@dataclass(frozen=True, slots=True)
class Config:
    """Sizes for one `python -m bench` run; `--quick` shrinks all of them."""

    quick: bool = False
    runs: int = 3
    seconds: float = 4.0

    def pick(self, full: Any, quick: Any) -> Any:
        return quick if self.quick else full


@dataclass(slots=True)
class Metric:
    """One figure: the median of several runs, with their min and max."""

    key: str
    label: str
    unit: str
    runs: list[float]
    higher_is_better: bool = True
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.runs) if self.runs else float("nan")

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "unit": self.unit,
            "median": _round(self.median),
            "min": _round(min(self.runs)) if self.runs else None,
            "max": _round(max(self.runs)) if self.runs else None,
            "runs": [_round(r) for r in self.runs],
            "note": self.note,
        }


@dataclass(slots=True)
class Section:
    name: str
    title: str
    metrics: list[Metric] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checks: dict[str, Any] = field(default_factory=dict)

    def add(self, key: str, label: str, unit: str, runs: Sequence[float], **kw: Any) -> Metric:
        metric = Metric(key, label, unit, list(runs), **kw)
        self.metrics.append(metric)
        return metric

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "metrics": [m.as_dict() for m in self.metrics],
            "notes": self.notes,
            "checks": self.checks,
        }


def _round(x: float) -> float:
    if x != x:  # NaN
        return x
    return round(x, 3) if abs(x) < 100 else round(x, 1)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of unsorted values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def machine() -> dict[str, Any]:
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "machine": platform.machine(),
        "system": f"{platform.system()} {platform.release()}",
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
    }


def scratch_dir(name: str) -> Path:
    path = SCRATCH / f"{name}-{secrets.token_hex(3)}"
    path.mkdir(parents=True)
    return path


# --- seeding: fast, through the real store ---------------------------------------------


def new_tasks(count: int, now: datetime, title: str = "noop") -> list[AnyEvent]:
    events: list[AnyEvent] = []
    for i in range(count):
        new = NewTask(
            task_id=new_task_id(),
            title=f"{title} {i}",
            prompt="noop",
            required_capabilities=(),
            max_retries=0,
            timeout_secs=3600,
        )
        events += task_model.create(new, now, actor="bench")
    return events


def new_agents(ids: Sequence[str], now: datetime) -> list[AnyEvent]:
    events: list[AnyEvent] = []
    for agent_id in ids:
        reg = Registration(
            agent_id=AgentId(agent_id),
            agent_type="bench",
            mode=AgentMode.HTTP_PULL,
            hostname=None,
            capabilities=(),
            max_concurrency=1,
        )
        events += agent_model.register(None, reg, now, actor=agent_id)
    return events


async def append_batches(store: EventStore, events: Sequence[AnyEvent], batch: int = 2000) -> None:
    for start in range(0, len(events), batch):
        await store.append(events[start : start + batch])


def seed_sqlite(db_path: Path, tasks: int = 0, agents: Sequence[str] = ()) -> None:
    """Create a migrated SQLite store holding `tasks` no-op tasks and `agents` pull agents.

    Appended in batches through `SqliteEventStore` (events + projections as the
    product writes them); agents also get a fresh heartbeat so they stay online.
    """

    async def main() -> None:
        store = SqliteEventStore(db_path, synchronous="OFF")
        try:
            await store.migrate()
            now = datetime.now(UTC)
            await append_batches(store, new_agents(agents, now))
            await append_batches(store, new_tasks(tasks, now))
        finally:
            await store.close()

    asyncio.run(main())
    if agents:
        import sqlite3

        with sqlite3.connect(db_path) as conn:
            at = ts(datetime.now(UTC))
            conn.executemany(
                "INSERT OR REPLACE INTO agent_heartbeats (agent_id, at) VALUES (?, ?)",
                [(a, at) for a in agents],
            )


def seed_postgres(url: str, tasks: int) -> None:
    async def main() -> None:
        store = PostgresEventStore(url)
        try:
            await store.migrate()
            await append_batches(store, new_tasks(tasks, datetime.now(UTC)), batch=1000)
        finally:
            await store.close()

    asyncio.run(main())


def duplicate_assignments_sqlite(db_path: Path) -> tuple[int, int]:
    """(task.assigned events, (task, attempt) pairs assigned more than once)."""
    import sqlite3

    with sqlite3.connect(db_path) as conn:
        total = conn.execute("SELECT count(*) FROM events WHERE type = 'task.assigned'").fetchone()
        dups = conn.execute(
            "SELECT count(*) FROM (SELECT stream, json_extract(data, '$.attempt') AS a "
            "FROM events WHERE type = 'task.assigned' GROUP BY stream, a HAVING count(*) > 1)"
        ).fetchone()
    return int(total[0]), int(dups[0])


def duplicate_assignments_postgres(url: str) -> tuple[int, int]:
    with psycopg.connect(url) as conn:
        total = conn.execute("SELECT count(*) FROM events WHERE type = 'task.assigned'").fetchone()
        dups = conn.execute(
            "SELECT count(*) FROM (SELECT stream, data->>'attempt' AS a "
            "FROM events WHERE type = 'task.assigned' GROUP BY stream, a HAVING count(*) > 1) d"
        ).fetchone()
    assert total is not None and dups is not None
    return int(total[0]), int(dups[0])


# --- PostgreSQL scratch databases --------------------------------------------------------


def pg_available() -> bool:
    try:
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def fresh_pg_database(prefix: str = "bench") -> str:
    name = f"{prefix}_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}"


def drop_pg_database(url: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def timed(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started
