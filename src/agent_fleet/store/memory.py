"""The `EventStore` contract in memory: dictionaries behind one lock.

It runs the same contract suite as the SQL stores (`tests/contract/`), so a service
test that passes on it means what it says. `agent_fleet.testing` hands it to tests.

Over 300 lines: it is the whole `EventStore` port, each method a few lines of
dictionaries (the SQL stores share theirs through `reads.py` and `.sql` files).
"""

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal

from agent_fleet.domain import holds
from agent_fleet.domain import task as task_model
from agent_fleet.domain.agent import Agent
from agent_fleet.domain.budget import receipt_of
from agent_fleet.domain.errors import AgentNotFound, AgentUnavailable, ConcurrencyConflict
from agent_fleet.domain.events import (
    AnyEvent,
    TaskProgress,
    TaskPrUpdated,
    TaskStarted,
    is_task_event,
)
from agent_fleet.domain.ids import AgentId, Lease, TaskId
from agent_fleet.domain.logbook import LogHead, plan_append
from agent_fleet.domain.matching import next_task_for
from agent_fleet.domain.states import (
    HELD_STATES,
    RETRYABLE_STATES,
    AgentMode,
    AgentStatus,
    ExecutionMode,
    TaskState,
)
from agent_fleet.domain.task import Task
from agent_fleet.ports.queries import AgentQuery, RecordedEvent, TaskQuery
from agent_fleet.ports.store import Heartbeat, ProjectionDifference, Take
from agent_fleet.store.projection import fold

if TYPE_CHECKING:
    from agent_fleet.ports.store import EventStore

NEVER = datetime.min.replace(tzinfo=UTC)  # the heartbeat of an agent that never beat
LogKey = tuple[str, int]


class InMemoryEventStore:
    """The `EventStore` contract in dictionaries; one lock makes every operation atomic."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._events: list[RecordedEvent] = []
        self._keys: set[tuple[str, int]] = set()  # the (stream, version) unique key
        self._tasks: dict[str, Task] = {}
        self._agents: dict[str, Agent] = {}
        self._beats: dict[str, datetime] = {}
        self._log_heads: dict[LogKey, LogHead] = {}
        self._log_chunks: dict[LogKey, list[tuple[int, bytes]]] = {}
        self._deliveries: dict[str, str] = {}  # delivery id → content key
        self._cursors: dict[str, int] = {}

    async def migrate(self) -> int:
        return 0  # nothing to migrate: the schema is this class

    async def close(self) -> None:
        """Nothing to release."""

    # --- writes -------------------------------------------------------------------

    async def append(self, events: Sequence[AnyEvent]) -> list[RecordedEvent]:
        async with self._lock:
            return self._commit(events)

    async def claim_task(
        self, agent: Agent, modes: frozenset[ExecutionMode], lease: Lease, now: datetime
    ) -> Task | None:
        async with self._lock:
            return await self._claim_locked(agent, modes, lease, now)

    async def take_task(
        self, agent: Agent, modes: frozenset[ExecutionMode], lease: Lease, now: datetime
    ) -> Take:
        async with self._lock:
            held = self._held(agent.agent_id)
            for task in held:
                if task.state is TaskState.ASSIGNED and task.lease is not None:
                    return Take(task)
            if len(held) >= agent.max_concurrency:
                return Take(None, full=True)
            claimed = await self._claim_locked(agent, modes, lease, now)
            return Take(claimed, claimed=claimed is not None)

    async def _claim_locked(
        self, agent: Agent, modes: frozenset[ExecutionMode], lease: Lease, now: datetime
    ) -> Task | None:
        stored = self._agents.get(agent.agent_id)
        if stored is None:
            raise AgentNotFound(agent.agent_id)
        if stored.status is not AgentStatus.ONLINE:
            raise AgentUnavailable(agent.agent_id, stored.status)
        if len(self._held(agent.agent_id)) >= agent.max_concurrency:
            return None
        claimable = (
            t
            for t in self._tasks.values()
            if t.state is TaskState.CREATED and t.hold is None and t.execution_mode in modes
        )
        task = next_task_for(agent.capabilities, claimable)
        if task is None:
            return None
        # Yield mid-transaction, as a real store does on I/O: were the lock missing,
        # the contract's claim race would catch a task handed out twice.
        await asyncio.sleep(0)
        events = task_model.assign(
            task, agent.agent_id, agent.host_id, lease, now, actor=agent.agent_id
        )
        self._commit(events)
        return self._tasks[task.task_id]

    def _commit(self, events: Sequence[AnyEvent]) -> list[RecordedEvent]:
        """Check everything first, then change everything: all or nothing."""
        projected = fold(events, self._tasks.get, self._agents.get)
        for event in events:
            # Projections can be replaced; the event log's own key still refuses a rewrite.
            if (event.stream_id, event.version) in self._keys:
                raise ConcurrencyConflict(event.stream_id, event.version)
        recorded = [RecordedEvent(len(self._events) + n, e) for n, e in enumerate(events, 1)]
        self._events.extend(recorded)
        self._keys.update((e.stream_id, e.version) for e in events)
        self._tasks.update(projected.tasks)
        self._agents.update(projected.agents)
        return recorded

    async def record_heartbeat(self, beat: Heartbeat) -> None:
        async with self._lock:
            self._beats[beat.agent_id] = beat.at

    async def replace_projections(self, tasks: Sequence[Task], agents: Sequence[Agent]) -> None:
        async with self._lock:
            self._tasks = {t.task_id: t for t in tasks}
            self._agents = {a.agent_id: a for a in agents}

    async def append_log(
        self,
        task_id: TaskId,
        attempt: int,
        offset: int,
        data: bytes,
        limit: int,
        source_length: int | None = None,
    ) -> LogHead:
        async with self._lock:
            key = (task_id, attempt)
            head = self._log_heads.get(key, LogHead())
            plan = plan_append(head, offset, data, limit, source_length)
            if plan.keep:
                self._log_chunks.setdefault(key, []).append((head.stored, plan.keep))
            self._log_heads[key] = plan.head
            return plan.head

    async def read_log(
        self, task_id: TaskId, attempt: int, offset: int, max_bytes: int
    ) -> tuple[bytes, LogHead]:
        async with self._lock:
            key = (task_id, attempt)
            # Chunks are contiguous from 0 (each starts where the kept log ended).
            kept = b"".join(chunk for _, chunk in self._log_chunks.get(key, []))
            return kept[max(0, offset) :][:max_bytes], self._log_heads.get(key, LogHead())

    async def record_delivery(
        self, delivery_id: str, content_key: str, event: str, at: datetime
    ) -> bool:
        """True when this delivery (by id and by content) is new."""
        async with self._lock:
            if delivery_id in self._deliveries or content_key in self._deliveries.values():
                return False
            self._deliveries[delivery_id] = content_key
            return True

    async def forget_delivery(self, delivery_id: str) -> None:
        async with self._lock:
            self._deliveries.pop(delivery_id, None)

    # --- reads --------------------------------------------------------------------

    async def get_task(self, task_id: TaskId) -> Task | None:
        return self._tasks.get(task_id)

    async def get_agent(self, agent_id: AgentId) -> Agent | None:
        return self._agents.get(agent_id)

    async def list_tasks(self, query: TaskQuery) -> list[Task]:
        def wanted(t: Task) -> bool:
            return (
                (query.state is None or t.state is query.state)
                and (query.agent_id is None or t.agent_id == query.agent_id)
                and (query.repo is None or t.source.repo == query.repo)
                and (query.issue_number is None or t.source.issue_number == query.issue_number)
                and (query.after is None or (t.created_at, t.task_id) < query.after)
            )

        if query.by_spend:
            ordered = sorted(
                self._tasks.values(),
                key=lambda t: (-t.spend.cost_usd, -t.spend.tokens, t.task_id),
            )
            return [t for t in ordered if wanted(t)][: query.limit]
        newest_first = sorted(
            self._tasks.values(), key=lambda t: (t.created_at, t.task_id), reverse=True
        )
        return [t for t in newest_first if wanted(t)][: query.limit]

    async def list_agents(self, query: AgentQuery) -> list[Agent]:
        return [
            a
            for a in sorted(self._agents.values(), key=lambda a: a.agent_id)
            if (query.status is None or a.status is query.status)
            and (query.mode is None or a.mode is query.mode)
            and (query.capability is None or query.capability in a.capabilities)
        ]

    async def held_tasks(self, agent_id: AgentId) -> list[Task]:
        return self._held(agent_id)

    def _held(self, agent_id: str) -> list[Task]:
        held = [t for t in self._tasks.values() if t.agent_id == agent_id and t.is_held]
        return sorted(held, key=lambda t: (t.created_at, t.task_id))

    async def running_counts(self) -> dict[str, int]:
        held = (t.agent_id for t in self._tasks.values() if t.is_held and t.agent_id is not None)
        return dict(Counter(held))

    async def count_tasks_by_state(self) -> dict[str, int]:
        return dict(Counter(t.state.value for t in self._tasks.values()))

    async def timed_out_tasks(self, now: datetime, limit: int) -> list[Task]:
        deadlines = {
            t.task_id: t.assigned_at + timedelta(seconds=t.timeout_secs)
            for t in self._tasks.values()
            if t.state in HELD_STATES and t.assigned_at is not None
        }
        late = [self._tasks[i] for i, deadline in deadlines.items() if deadline < now]
        return sorted(late, key=lambda t: (deadlines[t.task_id], t.task_id))[:limit]

    async def retries_due(self, now: datetime, limit: int) -> list[Task]:
        due = [
            t
            for t in self._tasks.values()
            if t.state in RETRYABLE_STATES and t.retry_at is not None and t.retry_at <= now
        ]
        return sorted(due, key=lambda t: (t.retry_at or now, t.task_id))[:limit]

    async def holds_due(self, now: datetime, limit: int) -> list[Task]:
        due = [t for t in self._tasks.values() if holds.is_release_due(t, now)]
        return sorted(due, key=lambda t: (t.hold.until if t.hold else now, t.task_id))[:limit]

    async def stale_agents(self, cutoff: datetime, limit: int) -> list[Agent]:
        return [
            a
            for a in sorted(self._agents.values(), key=lambda a: a.agent_id)
            if a.status is AgentStatus.ONLINE
            and a.mode is AgentMode.HTTP_PULL
            and self._beats.get(a.agent_id, NEVER) < cutoff
        ][:limit]

    async def orphaned_tasks(self, limit: int) -> list[Task]:
        def absent(agent_id: str | None) -> bool:
            agent = self._agents.get(agent_id) if agent_id is not None else None
            return agent is None or agent.status is not AgentStatus.ONLINE

        held = sorted(
            (t for t in self._tasks.values() if t.is_held and absent(t.agent_id)),
            key=lambda t: (t.created_at, t.task_id),
        )
        return held[:limit]

    async def last_heartbeat(self, agent_id: AgentId) -> datetime | None:
        return self._beats.get(agent_id)

    async def last_heartbeats(self) -> dict[AgentId, datetime]:
        return {AgentId(agent_id): at for agent_id, at in self._beats.items()}

    async def stream_events(self, stream_id: str) -> list[RecordedEvent]:
        mine = [r for r in self._events if r.event.stream_id == stream_id]
        return sorted(mine, key=lambda r: r.event.version)

    async def stream_events_after(
        self, stream_id: str, after: int, limit: int
    ) -> list[RecordedEvent]:
        return [r for r in await self.stream_events(stream_id) if r.event.version > after][:limit]

    async def stream_events_before(
        self, stream_id: str, before: int | None, limit: int
    ) -> list[RecordedEvent]:
        older = [
            r
            for r in await self.stream_events(stream_id)
            if before is None or r.event.version < before
        ]
        return older[-limit:] if limit else []

    async def task_streams_since(self, since: datetime) -> list[str]:
        touched = {
            r.event.stream_id
            for r in self._events
            if is_task_event(r.event) and r.event.at >= since
        }
        waiting = {t.task_id for t in self._tasks.values() if t.state is TaskState.CREATED}
        return sorted(touched | waiting)

    async def event_outlines(self, stream_ids: Sequence[str]) -> list[RecordedEvent]:
        wanted = set(stream_ids)
        found = [
            RecordedEvent(r.seq, _outline(r.event))
            for r in self._events
            if r.event.stream_id in wanted and not isinstance(r.event, _NOT_OUTLINED)
        ]
        return sorted(found, key=lambda r: (r.event.stream_id, r.event.version))

    async def repo_receipts_since(self, repo: str, since: datetime) -> list[RecordedEvent]:
        def of_repo(stream: str) -> bool:
            task = self._tasks.get(stream)
            return task is not None and (task.source.repo or "").lower() == repo.lower()

        return [
            r
            for r in self._events
            if r.event.at >= since
            and receipt_of(r.event) is not None
            and of_repo(r.event.stream_id)
        ]

    async def iter_events(self, batch: int = 1000, after: int = 0) -> AsyncIterator[RecordedEvent]:
        async for page in self.event_batches(batch, after):
            for recorded in page:
                yield recorded

    async def event_batches(
        self, batch: int = 1000, after: int = 0
    ) -> AsyncIterator[list[RecordedEvent]]:
        position = after  # seq is gap-free from 1, so seq N sits at index N - 1
        while position < len(self._events):  # re-read per page: later appends show up
            page = self._events[position : position + batch]
            position += len(page)
            yield page

    async def read_cursor(self, name: str) -> int:
        return self._cursors.get(name, 0)

    async def advance_cursor(self, name: str, seq: int) -> None:
        async with self._lock:
            self._cursors[name] = max(self._cursors.get(name, 0), seq)

    async def all_projections(self) -> tuple[list[Task], list[Agent]]:
        tasks = sorted(self._tasks.values(), key=lambda t: t.task_id)
        return tasks, sorted(self._agents.values(), key=lambda a: a.agent_id)

    async def reconcile_projections(
        self, tasks: Mapping[str, Task], agents: Mapping[str, Agent], *, write: bool
    ) -> list[ProjectionDifference]:
        async with self._lock:
            found = _differences("task", tasks, self._tasks)
            found += _differences("agent", agents, self._agents)
            if write:
                self._tasks, self._agents = dict(tasks), dict(agents)
            return found


def _differences(
    kind: Literal["task", "agent"], replayed: Mapping[str, object], stored: Mapping[str, object]
) -> list[ProjectionDifference]:
    """Stored objects are compared as objects: this store keeps no encoded form."""
    out = []
    for key in replayed.keys() | stored.keys():
        if key not in stored:
            out.append(ProjectionDifference(kind, key, "missing"))
        elif key not in replayed:
            out.append(ProjectionDifference(kind, key, "extra"))
        elif replayed[key] != stored[key]:
            out.append(ProjectionDifference(kind, key, "differs"))
    return out


_NOT_OUTLINED = (TaskStarted, TaskProgress, TaskPrUpdated)


def _outline(event: AnyEvent) -> AnyEvent:
    """The event with its free text emptied, as `event_outlines` promises."""
    blank: dict[str, object] = {
        name: "" for name in ("prompt", "title", "message") if hasattr(event, name)
    }
    receipt = getattr(event, "receipt", None)
    if receipt is not None:
        blank["receipt"] = replace(receipt, summary="", error=None)
    return replace(event, **blank)  # type: ignore[arg-type]  # the fields named are its own


if TYPE_CHECKING:  # mypy proves the store satisfies the port
    _conforms: EventStore = InMemoryEventStore()
