"""The read side every SQL store shares: named queries in, domain objects out.

Both dialects name their queries and parameters alike, so a store only has to
say how to run one (`_rows`); everything here is written once.
"""

import asyncio
import json
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from agent_fleet.codec import (
    decode_agent,
    decode_event,
    decode_event_json,
    decode_task,
    parse_ts,
    ts,
)
from agent_fleet.domain.agent import Agent
from agent_fleet.domain.ids import AgentId, TaskId
from agent_fleet.domain.task import Task
from agent_fleet.ports.queries import AgentQuery, RecordedEvent, TaskQuery
from agent_fleet.ports.store import ProjectionDifference
from agent_fleet.store.projection import Reconcile, Reconciled, agent_row, task_row

#: "Before the newest": above any version a stream can reach.
NEWEST = 2**62
#: Stored projection rows compared per read (keyset pages: memory stays bounded).
PROJECTION_PAGE = 5000


class QueryReads(ABC):
    @abstractmethod
    async def _rows(self, name: str, params: dict[str, Any]) -> list[tuple[Any, ...]]: ...

    async def _tasks(self, name: str, params: dict[str, Any]) -> list[Task]:
        return [decode_task(r[0]) for r in await self._rows(name, params)]

    async def _agents(self, name: str, params: dict[str, Any]) -> list[Agent]:
        return [decode_agent(r[0]) for r in await self._rows(name, params)]

    async def get_task(self, task_id: TaskId) -> Task | None:
        found = await self._tasks("get_task", {"task_id": task_id})
        return found[0] if found else None

    async def get_agent(self, agent_id: AgentId) -> Agent | None:
        found = await self._agents("get_agent", {"agent_id": agent_id})
        return found[0] if found else None

    async def list_tasks(self, query: TaskQuery) -> list[Task]:
        if query.by_spend:
            name = "list_tasks_by_spend"
        else:
            name = "list_tasks" if query.agent_id is None else "list_agent_tasks"
        return await self._tasks(
            name,
            {
                "state": query.state.value if query.state else None,
                "agent_id": query.agent_id,
                "repo": query.repo,
                "issue_number": query.issue_number,
                "after_created": ts(query.after[0]) if query.after else None,
                "after_id": query.after[1] if query.after else None,
                "limit": query.limit,
            },
        )

    async def list_agents(self, query: AgentQuery) -> list[Agent]:
        return await self._agents(
            "list_agents",
            {
                "status": query.status.value if query.status else None,
                "mode": query.mode.value if query.mode else None,
                "capability": query.capability,
            },
        )

    async def held_tasks(self, agent_id: AgentId) -> list[Task]:
        return await self._tasks("held_tasks", {"agent_id": agent_id})

    async def running_counts(self) -> dict[str, int]:
        return {r[0]: r[1] for r in await self._rows("running_counts", {})}

    async def count_tasks_by_state(self) -> dict[str, int]:
        return {r[0]: r[1] for r in await self._rows("count_by_state", {})}

    async def timed_out_tasks(self, now: datetime, limit: int) -> list[Task]:
        return await self._tasks("timed_out", {"now": ts(now), "limit": limit})

    async def retries_due(self, now: datetime, limit: int) -> list[Task]:
        return await self._tasks("retries_due", {"now": ts(now), "limit": limit})

    async def holds_due(self, now: datetime, limit: int) -> list[Task]:
        return await self._tasks("holds_due", {"now": ts(now), "limit": limit})

    async def orphaned_tasks(self, limit: int) -> list[Task]:
        return await self._tasks("orphaned_tasks", {"limit": limit})

    async def stale_agents(self, cutoff: datetime, limit: int) -> list[Agent]:
        return await self._agents("stale_agents", {"cutoff": ts(cutoff), "limit": limit})

    async def last_heartbeat(self, agent_id: AgentId) -> datetime | None:
        rows = await self._rows("last_heartbeat", {"agent_id": agent_id})
        return parse_ts(rows[0][0]) if rows else None

    async def last_heartbeats(self) -> dict[AgentId, datetime]:
        return {AgentId(r[0]): parse_ts(r[1]) for r in await self._rows("last_heartbeats", {})}

    async def stream_events(self, stream_id: str) -> list[RecordedEvent]:
        return [recorded(r) for r in await self._rows("stream_events", {"stream": stream_id})]

    async def stream_events_after(
        self, stream_id: str, after: int, limit: int
    ) -> list[RecordedEvent]:
        params = {"stream": stream_id, "after": after, "limit": limit}
        return [recorded(r) for r in await self._rows("stream_events_after", params)]

    async def stream_events_before(
        self, stream_id: str, before: int | None, limit: int
    ) -> list[RecordedEvent]:
        below = NEWEST if before is None else before
        params = {"stream": stream_id, "before": below, "limit": limit}
        rows = await self._rows("stream_events_before", params)
        return [recorded(r) for r in reversed(rows)]

    async def task_streams_since(self, since: datetime) -> list[str]:
        return [r[0] for r in await self._rows("task_streams_since", {"since": ts(since)})]

    async def event_outlines(self, stream_ids: Sequence[str]) -> list[RecordedEvent]:
        if not stream_ids:
            return []
        rows = await self._rows("event_outlines", {"streams": self._id_list(stream_ids)})
        return [recorded(r) for r in rows]

    def _id_list(self, ids: Sequence[str]) -> Any:
        """How a list parameter travels: JSON text for SQLite's json_each (PostgreSQL: a list)."""
        return json.dumps(list(ids))

    async def repo_receipts_since(self, repo: str, since: datetime) -> list[RecordedEvent]:
        rows = await self._rows("repo_receipts_since", {"repo": repo, "since": ts(since)})
        return [recorded(r) for r in rows]

    async def iter_events(self, batch: int = 1000, after: int = 0) -> AsyncIterator[RecordedEvent]:
        async for page in self.event_batches(batch, after):
            for event in page:
                yield event

    async def event_batches(
        self, batch: int = 1000, after: int = 0
    ) -> AsyncIterator[list[RecordedEvent]]:
        async for rows in self._pages("events_after", after, batch):
            yield [RecordedEvent(seq, decode_event_json(type_, text)) for seq, type_, text in rows]

    async def _pages(
        self, name: str, after: Any, limit: int, params: dict[str, Any] | None = None
    ) -> AsyncIterator[list[tuple[Any, ...]]]:
        """The pages of a keyset query (`:after`, `:limit`; each row's key first). The
        next page is read (on the store's thread or connection) while the caller works
        on this one: a replay overlaps reading the log with folding it."""

        def read(after: Any) -> "asyncio.Future[list[tuple[Any, ...]]]":
            asked = {**(params or {}), "after": after, "limit": limit}
            return asyncio.ensure_future(self._rows(name, asked))

        pending = read(after)
        try:
            while True:
                rows = await pending
                if len(rows) == limit:
                    pending = read(rows[-1][0])
                yield rows
                if len(rows) < limit:
                    return
        finally:
            pending.cancel()  # a reader that stopped early leaves no read behind

    async def read_cursor(self, name: str) -> int:
        rows = await self._rows("read_cursor", {"name": name})
        return int(rows[0][0]) if rows else 0

    async def all_projections(self) -> tuple[list[Task], list[Agent]]:
        return await self._tasks("all_tasks", {}), await self._agents("all_agents", {})

    async def reconcile_projections(
        self, tasks: Mapping[str, Task], agents: Mapping[str, Agent], *, write: bool
    ) -> list[ProjectionDifference]:
        found = Reconcile("task", tasks, task_row, decode_task)
        async for rows in self._pages("projection_task_rows", "", PROJECTION_PAGE):
            found.compare(rows)
        found_agents = Reconcile("agent", agents, agent_row, decode_agent)
        async for rows in self._pages("projection_agent_rows", "", PROJECTION_PAGE):
            found_agents.compare(rows)
        for_tasks, for_agents = found.done(), found_agents.done()
        if write and (for_tasks.changes or for_agents.changes):
            await self._rewrite_projections(for_tasks, for_agents)
        return for_tasks.differences + for_agents.differences

    @abstractmethod
    async def _rewrite_projections(self, tasks: Reconciled, agents: Reconciled) -> None:
        """Upsert the `writes` and delete the `drops` of both, in one transaction."""


def recorded(row: tuple[Any, ...]) -> RecordedEvent:
    seq, type_, stream, version, at, actor, data = row
    text_at = at if isinstance(at, str) else ts(at)  # PostgreSQL hands back a datetime
    return RecordedEvent(seq, decode_event(type_, stream, version, text_at, actor, data))


def join_chunks(chunks: Iterable[tuple[Any, ...]], offset: int, max_bytes: int) -> bytes:
    """Stored log chunks `(start, data)` in order, as bytes from `offset`, at most `max_bytes`."""
    parts, size = [], 0
    for start, chunk in chunks:
        piece = bytes(chunk)[max(0, offset - start) :]
        parts.append(piece)
        size += len(piece)
        if size >= max_bytes:
            break
    return b"".join(parts)[:max_bytes]
