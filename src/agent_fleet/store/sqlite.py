"""The embedded event store: one SQLite file in WAL mode, driven from one thread.

Every call runs on a single dedicated thread, so the blocking `sqlite3` driver
never touches the event loop and writes are naturally serialised. Writes that
queue up while a commit is on disk are **group-committed**: one `BEGIN
IMMEDIATE … COMMIT` (one fsync) carries them all, each inside its own
savepoint, so one that fails (a version conflict) is undone alone, and none is
answered before the commit is durable. `BEGIN IMMEDIATE` makes a second process
on the same file wait (busy_timeout) instead of failing halfway through.
"""

import asyncio
import contextlib
import json
import queue
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
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
    StoreError,
)
from agent_fleet.domain.events import AnyEvent, type_name
from agent_fleet.domain.ids import Lease, TaskId
from agent_fleet.domain.logbook import LogHead, plan_append
from agent_fleet.domain.states import AgentStatus, ExecutionMode
from agent_fleet.domain.task import Task
from agent_fleet.ports import Heartbeat, RecordedEvent
from agent_fleet.store.projection import agent_row, fold, task_row
from agent_fleet.store.reads import QueryReads, join_chunks
from agent_fleet.store.sqlfile import load_migrations, load_queries

T = TypeVar("T")
Q = load_queries("sqlite")
BUSY_TIMEOUT_MS = 10_000
MAX_GROUP = 64  # writes per group commit


@dataclass(slots=True)
class _Job:
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    loop: asyncio.AbstractEventLoop
    future: "asyncio.Future[Any]"
    write: bool  # runs inside the group's transaction, under its own savepoint

    def settle(self, ok: bool, value: Any) -> None:
        def _set() -> None:
            if self.future.done():
                return  # the caller was cancelled meanwhile
            if ok:
                self.future.set_result(value)
            else:
                self.future.set_exception(value)

        # A caller whose loop has closed waits for nothing; the store thread goes on.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(_set)


class SqliteEventStore(QueryReads):
    def __init__(self, path: Path, *, synchronous: str = "FULL") -> None:
        self.path = path
        self._synchronous = synchronous
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None

    # --- plumbing -----------------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        """A read (or schema work) on the store's thread, outside any group."""
        return await self._submit(fn, args, write=False)

    async def _tx(self, fn: Callable[..., T], *args: Any) -> T:
        """A write: `fn` runs inside a group-committed transaction; answered once durable."""
        return await self._submit(fn, args, write=True)

    async def _submit(self, fn: Callable[..., T], args: tuple[Any, ...], write: bool) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name="sqlite-store", daemon=True)
            self._thread.start()
        self._jobs.put(_Job(fn, args, loop, future, write))
        return await future

    def _serve(self) -> None:
        waiting: deque[_Job | None] = deque()
        while True:
            job = waiting.popleft() if waiting else self._jobs.get()
            if job is None:
                return
            if not job.write:
                self._alone(job)
                continue
            group = [job]
            while len(group) < MAX_GROUP:
                try:
                    more = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if more is None or not more.write:
                    waiting.append(more)  # keeps its place: after this group
                    break
                group.append(more)
            self._group(group)

    def _alone(self, job: _Job) -> None:
        try:
            job.settle(True, job.fn(self._connection(), *job.args))
        except BaseException as e:
            job.settle(False, _store_error(self.path, e))

    def _group(self, group: list[_Job]) -> None:
        try:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
        except BaseException as e:
            for job in group:
                job.settle(False, _store_error(self.path, e))
            return
        outcomes: list[tuple[bool, Any]] = []
        try:
            for job in group:
                conn.execute("SAVEPOINT job")
                try:
                    value = job.fn(conn, *job.args)
                except BaseException as e:
                    conn.execute("ROLLBACK TO job")
                    outcomes.append((False, _store_error(self.path, e)))
                else:
                    outcomes.append((True, value))
                conn.execute("RELEASE job")
            conn.execute("COMMIT")
        except BaseException as e:  # the transaction itself failed: nothing was written
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            for job in group:
                job.settle(False, _store_error(self.path, e))
            return
        for job, (ok, value) in zip(group, outcomes, strict=True):
            job.settle(ok, value)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            _enable_wal(conn)
            # FULL: a committed transaction survives power loss, not only a crash.
            conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            self._conn = conn
        return self._conn

    async def close(self) -> None:
        def _close(conn: sqlite3.Connection) -> None:
            conn.close()
            self._conn = None

        if self._conn is not None:
            await self._run(_close)
        if self._thread is not None:
            self._jobs.put(None)
            await asyncio.to_thread(self._thread.join)
            self._thread = None

    # --- schema -------------------------------------------------------------------

    async def migrate(self) -> int:
        """Apply pending numbered migrations; returns how many were applied."""
        return await self._run(_migrate)

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
        def _claim(conn: sqlite3.Connection) -> Task | None:
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

        return await self._tx(_claim)

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

    async def append_log(
        self, task_id: TaskId, attempt: int, offset: int, data: bytes, limit: int
    ) -> LogHead:
        def _append(conn: sqlite3.Connection) -> LogHead:
            head = _log_head(conn, task_id, attempt)
            plan = plan_append(head, offset, data, limit)
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

        return await self._run(_read)

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

    # --- reads: the shared QueryReads, run on the store's thread ---------------------

    async def _rows(self, name: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        def _fetch(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
            return conn.execute(Q[name], params).fetchall()

        return await self._run(_fetch)


def _store_error(path: Path, e: BaseException) -> BaseException:
    if isinstance(e, sqlite3.Error | OSError):  # OSError: the file's directory is unusable
        error = StoreError(f"sqlite store at {path}: {e}")
        error.__cause__ = e
        return error
    return e


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

    def load_task(task_id: str) -> Task | None:
        if known is not None and known.task_id == task_id:
            return known
        return _get_task(conn, task_id)

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
    conn.executemany(Q["upsert_task"], [task_row(t) for t in projected.tasks.values()])
    conn.executemany(Q["upsert_agent"], [agent_row(a) for a in projected.agents.values()])
    return recorded


def _log_head(conn: sqlite3.Connection, task_id: str, attempt: int) -> LogHead:
    row = conn.execute(Q["log_head"], {"task_id": task_id, "attempt": attempt}).fetchone()
    return LogHead(row[0], row[1], bool(row[2])) if row else LogHead()


def _enable_wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL, waiting out other writers: SQLite does not apply busy_timeout here."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _migrate(conn: sqlite3.Connection) -> int:
    """Apply every pending migration in one write transaction.

    The applied versions are read inside that transaction: two processes
    starting on one file at once take turns, and the second finds nothing to do.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
        )
        done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
        applied = 0
        for number, name, sql in load_migrations("sqlite"):
            if number in done:
                continue
            for statement in _statements(sql):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (number, name, ts(datetime.now(UTC))),
            )
            applied += 1
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return applied


def _statements(sql: str) -> list[str]:
    """Split a migration into statements (our migrations hold no `;` inside literals)."""
    lines = [line.split("--", 1)[0] for line in sql.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
