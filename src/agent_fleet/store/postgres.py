"""The scale-out event store: PostgreSQL through psycopg 3 (async) and a connection pool.

Same contract as the SQLite store. What differs: claims use `FOR UPDATE SKIP
LOCKED` so replicas claim in parallel; appends lock the rows they change (the
per-stream order; a (stream, version) taken is a ConcurrencyConflict) and number
their events from a sequence under a shared advisory lock, so appends to
different streams never wait for each other; cursor readers (`iter_events`) read
only below a horizon that no append in flight can still commit under, so they
see the global order without skipping an event (docs/scale-out.md). Every append
that touches a task sends NOTIFY, which wakes long-polls on all replicas
(`PostgresTaskSignal`).
"""

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool

from agent_fleet.codec import decode_agent, decode_event_json, decode_task, event_data, ts
from agent_fleet.domain import task as task_model
from agent_fleet.domain.agent import Agent
from agent_fleet.domain.errors import (
    AgentNotFound,
    AgentUnavailable,
    ConcurrencyConflict,
    StoreError,
)
from agent_fleet.domain.events import AnyEvent, TaskEvent, type_name
from agent_fleet.domain.ids import Lease, TaskId
from agent_fleet.domain.logbook import LogHead, plan_append
from agent_fleet.domain.states import AgentStatus, ExecutionMode, TaskState
from agent_fleet.domain.task import Task
from agent_fleet.ports.queries import RecordedEvent
from agent_fleet.ports.store import Heartbeat, Take
from agent_fleet.store.postgres_signal import new_origin, notice
from agent_fleet.store.projection import Reconciled, agent_row, fold, task_row
from agent_fleet.store.reads import QueryReads, join_chunks
from agent_fleet.store.sqlfile import load_migrations, load_queries

T = TypeVar("T")
Q = load_queries("postgres")
Conn = psycopg.AsyncConnection[Any]
MIGRATION_LOCK = 7305512


class PostgresEventStore(QueryReads):
    def __init__(
        self, url: str, *, min_size: int = 2, max_size: int = 20, origin: str | None = None
    ) -> None:
        """`origin`: the name this process's notices carry (`PostgresTaskSignal`'s)."""
        self.url = url
        self.origin = origin or new_origin()
        self._pool = AsyncConnectionPool(url, min_size=min_size, max_size=max_size, open=False)
        self._opened = False
        self._opening = asyncio.Lock()

    async def _open(self) -> None:
        if self._opened:
            return
        async with self._opening:  # many first calls at once open the pool once
            if self._opened:
                return
            try:
                await self._pool.open(wait=True, timeout=15)
            except (psycopg.Error, TimeoutError) as e:
                raise StoreError(f"postgresql store: cannot connect: {e}") from e
            self._opened = True

    async def _tx(self, work: Callable[[Conn], Awaitable[T]]) -> T:
        """Run `work` in one transaction; driver errors become StoreError."""
        await self._open()
        try:
            async with self._pool.connection() as conn, conn.transaction():
                return await work(conn)
        except psycopg.Error as e:
            raise StoreError(f"postgresql store: {type(e).__name__}: {e}") from e

    async def _rows(self, name: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        async def fetch(conn: Conn) -> list[tuple[Any, ...]]:
            cur = await conn.execute(Q[name], params)
            return await cur.fetchall()

        return await self._tx(fetch)

    def _id_list(self, ids: Sequence[str]) -> Any:
        return list(ids)  # bound as a text[] for `= ANY(...)`

    async def event_batches(
        self, batch: int = 1000, after: int = 0
    ) -> AsyncIterator[list[RecordedEvent]]:
        """Events after `after` in seq order, in pages, up to the horizon taken when the
        read begins (`iter_events` reads these pages too).

        seq is drawn before commit, so an append in flight may still commit a seq
        lower than one already visible: reading past it would skip that event for
        good. Below the horizon every append has finished, and later ones draw higher.
        """
        upto = await self._horizon()
        if after >= upto:
            return
        async for rows in self._pages("events_after", after, batch, {"upto": upto}):
            yield [RecordedEvent(seq, decode_event_json(type_, text)) for seq, type_, text in rows]

    async def _horizon(self) -> int:
        async def take(conn: Conn) -> int:
            # The exclusive append lock waits out the appends in flight; new ones queue
            # behind it for as long as this transaction lasts: two short statements.
            await conn.execute(Q["horizon_patience"])
            await conn.execute(Q["horizon_lock"])
            row = await (await conn.execute(Q["horizon"])).fetchone()
            return int(row[0]) if row else 0

        return await self._tx(take)

    async def close(self) -> None:
        if self._opened:
            await self._pool.close()
            self._opened = False

    # --- schema -------------------------------------------------------------------

    async def migrate(self) -> int:
        async def run(conn: Conn) -> int:
            # Several replicas may start at once: one migrates, the others wait.
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY,"
                " name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
            )
            cur = await conn.execute("SELECT version FROM schema_migrations")
            done = {r[0] for r in await cur.fetchall()}
            applied = 0
            for number, name, sql in load_migrations("postgres"):
                if number in done:
                    continue
                await conn.execute(sql.encode())
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (number, name)
                )
                applied += 1
            return applied

        return await self._tx(run)

    async def schema(self) -> list[str]:
        rows = await self._rows_sql(
            "SELECT table_name || '.' || column_name || ':' || data_type FROM "
            "information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name != 'schema_migrations' ORDER BY 1"
        )
        return [r[0] for r in rows]

    async def _rows_sql(self, sql: str) -> list[tuple[Any, ...]]:
        async def fetch(conn: Conn) -> list[tuple[Any, ...]]:
            cur = await conn.execute(sql.encode())
            return await cur.fetchall()

        return await self._tx(fetch)

    # --- writes -------------------------------------------------------------------

    async def append(self, events: Sequence[AnyEvent]) -> list[RecordedEvent]:
        return await self._tx(lambda conn: _append_in_tx(conn, events, self.origin))

    async def claim_task(
        self, agent: Agent, modes: frozenset[ExecutionMode], lease: Lease, now: datetime
    ) -> Task | None:
        return await self._tx(
            lambda conn: _claim_in_tx(conn, agent, modes, lease, now, self.origin)
        )

    async def take_task(
        self, agent: Agent, modes: frozenset[ExecutionMode], lease: Lease, now: datetime
    ) -> Take:
        async def take(conn: Conn) -> Take:
            cur = await conn.execute(Q["held_tasks"], {"agent_id": agent.agent_id})
            held = [decode_task(row[0]) for row in await cur.fetchall()]
            for task in held:
                if task.state is TaskState.ASSIGNED and task.lease is not None:
                    return Take(task)
            if len(held) >= agent.max_concurrency:
                return Take(None, full=True)
            claimed = await _claim_in_tx(conn, agent, modes, lease, now, self.origin)
            return Take(claimed, claimed=claimed is not None)

        return await self._tx(take)

    async def record_heartbeat(self, beat: Heartbeat) -> None:
        await self._rows_void("record_heartbeat", {"agent_id": beat.agent_id, "at": ts(beat.at)})

    async def _rows_void(self, name: str, params: dict[str, Any]) -> None:
        async def run(conn: Conn) -> None:
            await conn.execute(Q[name], params)

        await self._tx(run)

    async def replace_projections(self, tasks: Sequence[Task], agents: Sequence[Agent]) -> None:
        async def run(conn: Conn) -> None:
            await conn.execute(Q["delete_tasks"])
            await conn.execute(Q["delete_agents"])
            async with conn.cursor() as cur:
                if tasks:
                    await cur.executemany(Q["upsert_task"], [task_row(t) for t in tasks])
                if agents:
                    await cur.executemany(Q["upsert_agent"], [agent_row(a) for a in agents])

        await self._tx(run)

    async def _rewrite_projections(self, tasks: Reconciled, agents: Reconciled) -> None:
        async def run(conn: Conn) -> None:
            async with conn.cursor() as cur:
                for name, params in (
                    ("delete_task", [{"key": k} for k in tasks.drops]),
                    ("delete_agent", [{"key": k} for k in agents.drops]),
                    ("upsert_task", tasks.writes),
                    ("upsert_agent", agents.writes),
                ):
                    if params:
                        await cur.executemany(Q[name], params)

        await self._tx(run)

    async def append_log(
        self,
        task_id: TaskId,
        attempt: int,
        offset: int,
        data: bytes,
        limit: int,
        source_length: int | None = None,
    ) -> LogHead:
        key = {"task_id": task_id, "attempt": attempt}

        async def run(conn: Conn) -> LogHead:
            await conn.execute(Q["ensure_log_head"], key)
            row = await (await conn.execute(Q["lock_log_head"], key)).fetchone()
            head = LogHead(row[0], row[1], row[2]) if row else LogHead()
            plan = plan_append(head, offset, data, limit, source_length)
            if plan.head == head:
                return head
            if plan.keep:
                await conn.execute(
                    Q["insert_log_chunk"], {**key, "start": head.stored, "data": plan.keep}
                )
            new = plan.head
            await conn.execute(
                Q["upsert_log_head"],
                {**key, "length": new.length, "stored": new.stored, "truncated": new.truncated},
            )
            return new

        return await self._tx(run)

    async def read_log(
        self, task_id: TaskId, attempt: int, offset: int, max_bytes: int
    ) -> tuple[bytes, LogHead]:
        key = {"task_id": task_id, "attempt": attempt}
        heads = await self._rows("log_head", key)
        head = LogHead(heads[0][0], heads[0][1], heads[0][2]) if heads else LogHead()
        chunks = await self._rows("read_log_chunks", {**key, "offset": offset})
        return join_chunks(chunks, offset, max_bytes), head

    async def record_delivery(
        self, delivery_id: str, content_key: str, event: str, at: datetime
    ) -> bool:
        """True when this delivery (by id and by content) is new."""

        async def run(conn: Conn) -> bool:
            cur = await conn.execute(
                Q["record_delivery"],
                {
                    "delivery_id": delivery_id,
                    "content_key": content_key,
                    "event": event,
                    "at": ts(at),
                },
            )
            return cur.rowcount == 1

        return await self._tx(run)

    async def forget_delivery(self, delivery_id: str) -> None:
        await self._rows_void("forget_delivery", {"delivery_id": delivery_id})

    async def advance_cursor(self, name: str, seq: int) -> None:
        await self._rows_void("advance_cursor", {"name": name, "seq": seq})


async def _append_in_tx(
    conn: Conn,
    events: Sequence[AnyEvent],
    origin: str,
    known_tasks: dict[str, Task] | None = None,
) -> list[RecordedEvent]:
    tasks: dict[str, Task | None] = dict(known_tasks or {})
    agents: dict[str, Agent | None] = {}
    # 1. Lock and load the rows this append changes, in a fixed order.
    for stream in sorted({e.stream_id for e in events}):
        is_task = any(isinstance(e, TaskEvent) for e in events if e.stream_id == stream)
        if is_task and stream not in tasks:
            row = await (await conn.execute(Q["lock_task"], {"id": stream})).fetchone()
            tasks[stream] = decode_task(row[0]) if row else None
        elif not is_task:
            row = await (await conn.execute(Q["lock_agent"], {"id": stream})).fetchone()
            agents[stream] = decode_agent(row[0]) if row else None
    projected = fold(events, lambda i: tasks.get(i), lambda i: agents.get(i))
    payload = notice(
        origin,
        {i: (tasks.get(i), t) for i, t in projected.tasks.items()},
        {i: (agents.get(i), a) for i, a in projected.agents.items()},
    )
    if not events:
        return []
    rows = [
        {
            "ord": n,
            "stream": e.stream_id,
            "version": e.version,
            "type": type_name(e),
            "data": json.loads(event_data(e)),
            "actor": e.actor,
            "at": ts(e.at),
        }
        for n, e in enumerate(events, start=1)
    ]
    params = {"events": json.dumps(rows)}
    # 2. Write the projections, the notice and the events in one round trip (a pipeline:
    # the statements still run in order, each seeing what the one before committed).
    try:
        async with conn.pipeline(), conn.cursor() as cur:
            if projected.tasks:
                await cur.executemany(
                    Q["upsert_task"], [task_row(t) for t in projected.tasks.values()]
                )
            if projected.agents:
                await cur.executemany(
                    Q["upsert_agent"], [agent_row(a) for a in projected.agents.values()]
                )
            if payload is not None:
                await cur.execute(Q["notify"], {"payload": payload})  # delivered at commit
            inserted = await conn.execute(Q["insert_events"], params)  # see insert_events
        seqs = sorted(r[0] for r in await inserted.fetchall())
    except psycopg.errors.UniqueViolation as e:
        # Only when a (stream, version) was taken after the statement's check began:
        # the constraint is the last word.
        first = next((ev for ev in events if ev.version == 1), events[0])
        raise ConcurrencyConflict(first.stream_id, first.version) from e
    if not seqs:  # a (stream, version) is taken: nothing was inserted, no number drawn
        taken = await (await conn.execute(Q["taken_version"], params)).fetchone()
        stream, version = taken if taken else (events[0].stream_id, events[0].version)
        raise ConcurrencyConflict(stream, version)
    return [RecordedEvent(seq, event) for seq, event in zip(seqs, events, strict=True)]


async def _claim_in_tx(
    conn: Conn,
    agent: Agent,
    modes: frozenset[ExecutionMode],
    lease: Lease,
    now: datetime,
    origin: str,
) -> Task | None:
    async with conn.pipeline():  # one round trip for both
        locked = await conn.execute(Q["lock_claimer"], {"id": agent.agent_id})
        counted = await conn.execute(Q["count_held"], {"agent_id": agent.agent_id})
    claimer, held = await locked.fetchone(), await counted.fetchone()
    if claimer is None:
        raise AgentNotFound(agent.agent_id)
    if claimer[0] != AgentStatus.ONLINE:
        raise AgentUnavailable(agent.agent_id, claimer[0])
    if held is None or held[0] >= agent.max_concurrency:
        return None
    params = {
        "agent_id": agent.agent_id,
        "modes": sorted(m.value for m in modes),
        "capabilities": json.dumps(list(agent.capabilities)),
    }
    async with conn.pipeline():  # the plan settings and the claim: one round trip
        await conn.execute(Q["claim_plan"])
        claimed = await conn.execute(Q["claim"], params)
        await conn.execute(Q["claim_plan_reset"])
    row = await claimed.fetchone()
    if row is None:
        return None
    task = decode_task(row[0])
    events = task_model.assign(task, agent.agent_id, agent.host_id, lease, now, agent.agent_id)
    await _append_in_tx(conn, events, origin, known_tasks={task.task_id: task})
    return task_model.evolve(task, events[0])
