"""The embedded event store: one SQLite file in WAL mode, one writer and one reader thread.

Writes are group-committed on the writer thread; reads run on the reader's own
connection (`sqlite_threads.py`). `BEGIN IMMEDIATE` makes a foreign process on
the same file wait (busy_timeout) instead of failing halfway through; with
`exclusive=True` (every CLI command) no second agent-fleet process may open it
for writing at all (`sqlite_lock.py`). Every read and write first checks that
the file is still the one opened (`sqlite_file.py`).
"""

import functools
import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from agent_fleet.codec import (
    decode_agent,
    decode_task,
    event_data,
    ts,
)
from agent_fleet.domain import task as task_model
from agent_fleet.domain.agent import Agent
from agent_fleet.domain.errors import (
    AgentNotFound,
    AgentUnavailable,
    ConcurrencyConflict,
)
from agent_fleet.domain.events import AnyEvent, type_name
from agent_fleet.domain.ids import Lease, TaskId
from agent_fleet.domain.logbook import LogHead, plan_append
from agent_fleet.domain.states import AgentStatus, ExecutionMode, TaskState
from agent_fleet.domain.task import Task
from agent_fleet.ports.queries import RecordedEvent
from agent_fleet.ports.store import Heartbeat, Take
from agent_fleet.store.projection import (
    TASK_COLUMNS,
    Reconciled,
    agent_row,
    fold,
    task_columns,
    task_row,
)
from agent_fleet.store.reads import QueryReads, join_chunks
from agent_fleet.store.sqlfile import load_queries
from agent_fleet.store.sqlite_file import (
    WAL_LIMIT_BYTES,
    FileIdentity,
    bound_wal,
    checkpoint,
    wal_bytes,
)
from agent_fleet.store.sqlite_lock import DatabaseLock
from agent_fleet.store.sqlite_schema import apply_migrations, enable_wal
from agent_fleet.store.sqlite_threads import StoreThread

T = TypeVar("T")
Q = load_queries("sqlite")
BUSY_TIMEOUT_MS = 10_000
CHECKPOINT_EVERY_SECS = 1.0  # at most one truncation attempt a second


class SqliteEventStore(QueryReads):
    def __init__(self, path: Path, *, synchronous: str = "FULL", exclusive: bool = False) -> None:
        """`exclusive`: hold the file's lock until `close` (`DatabaseInUse` if taken)."""
        self.path = path
        self._synchronous = synchronous
        self._lock = DatabaseLock.acquire(path) if exclusive else None
        self._file = FileIdentity(path)
        self._tended_at = 0.0
        self._writer = StoreThread(
            "sqlite-writer",
            self._open_writer,
            self._file.check,
            str(path),
            tend=self._tend,
            tend_every_secs=CHECKPOINT_EVERY_SECS,
        )
        self._reader = StoreThread("sqlite-reader", self._open_reader, self._file.check, str(path))

    # --- plumbing -----------------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        """Schema work on the writer's connection, outside any group."""
        return await self._writer.submit(fn, args, write=False)

    async def _tx(self, fn: Callable[..., T], *args: Any) -> T:
        """A write: `fn` runs inside a group-committed transaction; answered once durable."""
        return await self._writer.submit(fn, args, write=True)

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        """A read on the reader's connection: it never queues behind a write."""
        return await self._reader.submit(fn, args, write=False)

    def _open_writer(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._connect()
        enable_wal(conn, BUSY_TIMEOUT_MS)
        # FULL: a committed transaction survives power loss, not only a crash.
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        bound_wal(conn)
        self._file.remember()
        return conn

    def _open_reader(self) -> sqlite3.Connection:
        conn = self._connect()
        conn.execute("PRAGMA query_only = ON")
        self._file.remember()
        return conn

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        return conn

    def _tend(self, conn: sqlite3.Connection) -> None:
        """Between transactions: a WAL grown past its limit is truncated once it can be."""
        now = time.monotonic()
        if now - self._tended_at < CHECKPOINT_EVERY_SECS:
            return
        self._tended_at = now
        if wal_bytes(self.path) > WAL_LIMIT_BYTES:
            checkpoint(conn, BUSY_TIMEOUT_MS)

    async def close(self) -> None:
        await self._reader.close()
        await self._writer.close()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    # --- schema -------------------------------------------------------------------

    async def migrate(self) -> int:
        """Apply pending numbered migrations; returns how many were applied."""
        return await self._run(apply_migrations)

    async def schema(self) -> list[str]:
        def _schema(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                "SELECT sql FROM sqlite_master WHERE sql IS NOT NULL "
                "AND name != 'schema_migrations' ORDER BY name"
            )
            return [r[0] for r in rows]

        return await self._run(_schema)

    # --- writes -------------------------------------------------------------------

    async def append(self, events: Sequence[AnyEvent]) -> list[RecordedEvent]:
        return await self._tx(_append_in_tx, events)

    async def claim_task(
        self, agent: Agent, modes: frozenset[ExecutionMode], lease: Lease, now: datetime
    ) -> Task | None:
        return await self._tx(_claim_in_tx, agent, modes, lease, now)

    async def take_task(
        self, agent: Agent, modes: frozenset[ExecutionMode], lease: Lease, now: datetime
    ) -> Take:
        def _take(conn: sqlite3.Connection) -> Take:
            # The held read joins the claim's transaction: one trip to the writer, not two.
            held = conn.execute(Q["held_tasks"], {"agent_id": agent.agent_id}).fetchall()
            for (body,) in held:
                task = decode_task(body)
                if task.state is TaskState.ASSIGNED and task.lease is not None:
                    return Take(task)
            if len(held) >= agent.max_concurrency:
                return Take(None, full=True)
            claimed = _claim_in_tx(conn, agent, modes, lease, now)
            return Take(claimed, claimed=claimed is not None)

        return await self._tx(_take)

    async def record_heartbeat(self, beat: Heartbeat) -> None:
        def _beat(conn: sqlite3.Connection) -> None:
            conn.execute(Q["record_heartbeat"], {"agent_id": beat.agent_id, "at": ts(beat.at)})

        await self._tx(_beat)

    async def replace_projections(self, tasks: Sequence[Task], agents: Sequence[Agent]) -> None:
        def _replace(conn: sqlite3.Connection) -> None:
            conn.execute(Q["delete_tasks"])
            conn.execute(Q["delete_agents"])
            conn.executemany(Q["upsert_task"], [task_row(t) for t in tasks])
            conn.executemany(Q["upsert_agent"], [agent_row(a) for a in agents])

        await self._tx(_replace)

    async def _rewrite_projections(self, tasks: Reconciled, agents: Reconciled) -> None:
        def _rewrite(conn: sqlite3.Connection) -> None:
            conn.executemany(Q["delete_task"], [{"key": k} for k in tasks.drops])
            conn.executemany(Q["delete_agent"], [{"key": k} for k in agents.drops])
            conn.executemany(Q["upsert_task"], tasks.writes)
            conn.executemany(Q["upsert_agent"], agents.writes)

        await self._tx(_rewrite)

    async def append_log(
        self,
        task_id: TaskId,
        attempt: int,
        offset: int,
        data: bytes,
        limit: int,
        source_length: int | None = None,
    ) -> LogHead:
        def _append(conn: sqlite3.Connection) -> LogHead:
            head = _log_head(conn, task_id, attempt)
            plan = plan_append(head, offset, data, limit, source_length)
            if plan.head == head:
                return head
            key = {"task_id": task_id, "attempt": attempt}
            if plan.keep:
                conn.execute(
                    Q["insert_log_chunk"], {**key, "start": head.stored, "data": plan.keep}
                )
            new = plan.head
            conn.execute(
                Q["upsert_log_head"],
                {
                    **key,
                    "length": new.length,
                    "stored": new.stored,
                    "truncated": int(new.truncated),
                },
            )
            return new

        return await self._tx(_append)

    async def read_log(
        self, task_id: TaskId, attempt: int, offset: int, max_bytes: int
    ) -> tuple[bytes, LogHead]:
        def _read(conn: sqlite3.Connection) -> tuple[bytes, LogHead]:
            head = _log_head(conn, task_id, attempt)
            key = {"task_id": task_id, "attempt": attempt, "offset": offset}
            chunks = conn.execute(Q["read_log_chunks"], key)
            return join_chunks(chunks, offset, max_bytes), head

        return await self._read(_read)

    async def record_delivery(
        self, delivery_id: str, content_key: str, event: str, at: datetime
    ) -> bool:
        """True when this delivery (by id and by content) is new."""

        def _record(conn: sqlite3.Connection) -> bool:
            params = {
                "delivery_id": delivery_id,
                "content_key": content_key,
                "event": event,
                "at": ts(at),
            }
            return conn.execute(Q["record_delivery"], params).rowcount == 1

        return await self._tx(_record)

    async def forget_delivery(self, delivery_id: str) -> None:
        def _forget(conn: sqlite3.Connection) -> None:
            conn.execute(Q["forget_delivery"], {"delivery_id": delivery_id})

        await self._tx(_forget)

    async def advance_cursor(self, name: str, seq: int) -> None:
        def _advance(conn: sqlite3.Connection) -> None:
            conn.execute(Q["advance_cursor"], {"name": name, "seq": seq})

        await self._tx(_advance)

    # --- reads: the shared QueryReads, on the reader's connection --------------------

    async def _rows(self, name: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        def _fetch(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
            return conn.execute(Q[name], params).fetchall()

        return await self._read(_fetch)


def _claim_in_tx(
    conn: sqlite3.Connection,
    agent: Agent,
    modes: frozenset[ExecutionMode],
    lease: Lease,
    now: datetime,
) -> Task | None:
    claimer = conn.execute(Q["claimer"], {"agent_id": agent.agent_id}).fetchone()
    if claimer is None:
        raise AgentNotFound(agent.agent_id)
    status, held = claimer
    if status != AgentStatus.ONLINE:
        raise AgentUnavailable(agent.agent_id, status)
    if held >= agent.max_concurrency:
        return None
    row = conn.execute(
        Q["claim"],
        {
            "agent_id": agent.agent_id,
            "modes": json.dumps(sorted(m.value for m in modes)),
            "capabilities": json.dumps(list(agent.capabilities)),
        },
    ).fetchone()
    if row is None:
        return None
    task = decode_task(row[0])
    events = task_model.assign(
        task, agent.agent_id, agent.host_id, lease, now, actor=agent.agent_id
    )
    # The claimed row's body is the task as it was: no need to read it again.
    _append_in_tx(conn, events, known=task)
    return task_model.evolve(task, events[0])


def _get_task(conn: sqlite3.Connection, task_id: str) -> Task | None:
    row = conn.execute(Q["get_task"], {"task_id": task_id}).fetchone()
    return decode_task(row[0]) if row else None


def _get_agent(conn: sqlite3.Connection, agent_id: str) -> Agent | None:
    row = conn.execute(Q["get_agent"], {"agent_id": agent_id}).fetchone()
    return decode_agent(row[0]) if row else None


def _append_in_tx(
    conn: sqlite3.Connection, events: Sequence[AnyEvent], known: Task | None = None
) -> list[RecordedEvent]:
    """`known`: the current projection of a task this transaction has just read."""

    before: dict[str, Task | None] = {}  # each task's stored projection, as fold read it

    def load_task(task_id: str) -> Task | None:
        if known is not None and known.task_id == task_id:
            before[task_id] = known
        else:
            before[task_id] = _get_task(conn, task_id)
        return before[task_id]

    projected = fold(events, load_task, lambda i: _get_agent(conn, i))
    recorded = []
    for event in events:
        params = {
            "stream": event.stream_id,
            "version": event.version,
            "type": type_name(event),
            "data": event_data(event),
            "actor": event.actor,
            "at": ts(event.at),
        }
        try:
            seq = conn.execute(Q["insert_event"], params).fetchone()[0]
        except sqlite3.IntegrityError as e:
            raise ConcurrencyConflict(event.stream_id, event.version) from e
        recorded.append(RecordedEvent(seq, event))
    for task in projected.tasks.values():
        _write_task(conn, task, before.get(task.task_id))
    conn.executemany(Q["upsert_agent"], [agent_row(a) for a in projected.agents.values()])
    return recorded


def _write_task(conn: sqlite3.Connection, task: Task, stored: Task | None) -> None:
    """Insert a new task's row; of a stored one, set only the columns that changed.

    SQLite rewrites the entry of every index over a column an UPDATE sets, even to the
    value it had: a claim or a completion changes 3 or 4 of the 14 columns, and setting
    only those leaves the other indexes' pages alone (fewer pages to log and sync)."""
    row = task_row(task)
    if stored is None:
        conn.execute(Q["upsert_task"], row)
        return
    was = task_columns(stored)
    changed = tuple(c for c in _CHANGEABLE if row[c] != was[c])
    conn.execute(_update_task_sql(changed), row)


_CHANGEABLE = TASK_COLUMNS[2:-1]  # all but the key, the version and the body


@functools.cache
def _update_task_sql(columns: tuple[str, ...]) -> str:
    # Column names from TASK_COLUMNS only: nothing a caller says reaches this text.
    sets = ", ".join(f"{c} = :{c}" for c in ("version", *columns, "body"))
    return f"UPDATE tasks SET {sets} WHERE task_id = :task_id"  # noqa: S608


def _log_head(conn: sqlite3.Connection, task_id: str, attempt: int) -> LogHead:
    row = conn.execute(Q["log_head"], {"task_id": task_id, "attempt": attempt}).fetchone()
    return LogHead(row[0], row[1], bool(row[2])) if row else LogHead()
