"""The event store port: events plus the task and agent projections, always written together."""

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from agent_fleet.domain.agent import Agent
from agent_fleet.domain.events import AnyEvent
from agent_fleet.domain.ids import AgentId, Lease, TaskId
from agent_fleet.domain.logbook import LogHead
from agent_fleet.domain.states import ExecutionMode
from agent_fleet.domain.task import Task
from agent_fleet.ports.queries import AgentQuery, RecordedEvent, TaskQuery


@dataclass(frozen=True, slots=True, kw_only=True)
class Heartbeat:
    agent_id: AgentId
    at: datetime


@dataclass(frozen=True, slots=True)
class ProjectionDifference:
    """A stored projection row a replay disagrees with: `missing` (replayed, not stored),
    `extra` (stored, no events) or `differs` (the stored object is not the replayed one)."""

    kind: Literal["task", "agent"]
    key: str
    problem: Literal["missing", "extra", "differs"]


@dataclass(frozen=True, slots=True)
class Take:
    """What `take_task` found: `task` with `claimed` when it was assigned just now (its
    event appended), without when handed again; no task, and `full` when the agent
    holds as many as it may."""

    task: Task | None
    claimed: bool = False
    full: bool = False


class EventStore(Protocol):
    """Events plus the task and agent projections, always written together.

    `append` checks that each stream continues at its stored version + 1 and
    raises `ConcurrencyConflict` otherwise; the projections are folded from the
    same events in the same transaction, so they can never lag behind.
    """

    async def migrate(self) -> int: ...
    async def close(self) -> None: ...

    async def append(self, events: Sequence[AnyEvent]) -> list[RecordedEvent]: ...
    async def claim_task(
        self, agent: Agent, modes: frozenset[ExecutionMode], lease: Lease, now: datetime
    ) -> Task | None:
        """Assign the best open task `agent` can take, in one transaction, or None.

        The agent's stored status is checked in that transaction: one that is not
        online takes nothing (`AgentUnavailable`; `AgentNotFound` when unknown).
        """
        ...

    async def take_task(
        self, agent: Agent, modes: frozenset[ExecutionMode], lease: Lease, now: datetime
    ) -> Take:
        """A pull agent's look for work in one call: the oldest task it holds and has not
        started (a lost reply loses nothing), else, if it has room, `claim_task`."""
        ...

    async def get_task(self, task_id: TaskId) -> Task | None: ...
    async def get_agent(self, agent_id: AgentId) -> Agent | None: ...
    async def list_tasks(self, query: TaskQuery) -> list[Task]: ...
    async def list_agents(self, query: AgentQuery) -> list[Agent]: ...
    async def held_tasks(self, agent_id: AgentId) -> list[Task]: ...
    async def running_counts(self) -> dict[str, int]: ...
    async def count_tasks_by_state(self) -> dict[str, int]: ...

    async def timed_out_tasks(self, now: datetime, limit: int) -> list[Task]: ...
    async def retries_due(self, now: datetime, limit: int) -> list[Task]: ...
    async def holds_due(self, now: datetime, limit: int) -> list[Task]: ...
    async def stale_agents(self, cutoff: datetime, limit: int) -> list[Agent]: ...
    async def orphaned_tasks(self, limit: int) -> list[Task]:
        """Held tasks whose agent is not online (offline, deregistered or unknown)."""
        ...

    async def record_heartbeat(self, beat: Heartbeat) -> None: ...
    async def last_heartbeat(self, agent_id: AgentId) -> datetime | None: ...
    async def last_heartbeats(self) -> dict[AgentId, datetime]:
        """Every agent's last heartbeat, in one read."""
        ...

    async def append_log(
        self,
        task_id: TaskId,
        attempt: int,
        offset: int,
        data: bytes,
        limit: int,
        source_length: int | None = None,
    ) -> LogHead:
        """Add a chunk at `offset` (`domain.logbook.plan_append`); `source_length`: the
        source bytes a rewritten (redacted) chunk stands for."""
        ...

    async def read_log(
        self, task_id: TaskId, attempt: int, offset: int, max_bytes: int
    ) -> tuple[bytes, LogHead]: ...

    async def record_delivery(
        self, delivery_id: str, content_key: str, event: str, at: datetime
    ) -> bool: ...
    async def forget_delivery(self, delivery_id: str) -> None: ...

    async def stream_events(self, stream_id: str) -> list[RecordedEvent]: ...
    async def stream_events_after(
        self, stream_id: str, after: int, limit: int
    ) -> list[RecordedEvent]: ...
    async def stream_events_before(
        self, stream_id: str, before: int | None, limit: int
    ) -> list[RecordedEvent]:
        """The last `limit` events below version `before` (None: the newest), oldest first."""
        ...

    async def task_streams_since(self, since: datetime) -> list[str]:
        """Tasks with an event at or after `since`, and tasks waiting in `created`."""
        ...

    async def event_outlines(self, stream_ids: Sequence[str]) -> list[RecordedEvent]:
        """These streams' events as reports read them, stream by stream in version order:
        all but `task.started`, `task.progress` and `task.pr_updated` (they change neither
        state nor spend), with free text emptied (`prompt`, `title`, `message`, a
        receipt's `summary` and `error`)."""
        ...

    async def repo_receipts_since(self, repo: str, since: datetime) -> list[RecordedEvent]:
        """Events carrying receipts (review_pending, completed, failed) at or after `since`
        of the tasks of `repo` (compared without case), in time order."""
        ...

    def iter_events(self, batch: int = 1000, after: int = 0) -> AsyncIterator[RecordedEvent]: ...
    def event_batches(
        self, batch: int = 1000, after: int = 0
    ) -> AsyncIterator[list[RecordedEvent]]:
        """The events after `after` in seq order, a page at a time; the SQL stores read the
        next page while the caller works on this one (a replay reads the whole log)."""
        ...

    async def read_cursor(self, name: str) -> int: ...
    async def advance_cursor(self, name: str, seq: int) -> None: ...
    async def all_projections(self) -> tuple[list[Task], list[Agent]]: ...
    async def replace_projections(self, tasks: Sequence[Task], agents: Sequence[Agent]) -> None: ...
    async def reconcile_projections(
        self, tasks: Mapping[str, Task], agents: Mapping[str, Agent], *, write: bool
    ) -> list[ProjectionDifference]:
        """The stored rows that differ from these projections (a replay's), in no order.

        Rows are compared as stored (columns and encoded body), so only a row whose
        text differs is decoded. With `write`, the stored projections become exactly
        these in one transaction; a row that already matches is left as it is."""
        ...
