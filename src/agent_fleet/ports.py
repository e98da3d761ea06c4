"""The ports: what the services need from the outside world, as Protocols.

Adapters implement them (`SqliteEventStore`, `InMemoryEventStore`, ...);
services depend only on these.
"""

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from agent_fleet.domain.agent import Agent
from agent_fleet.domain.events import AnyEvent
from agent_fleet.domain.ids import AgentId, Lease, TaskId
from agent_fleet.domain.logbook import LogHead
from agent_fleet.domain.matching import Appetite, Opening
from agent_fleet.domain.states import AgentMode, AgentStatus, ExecutionMode, TaskState
from agent_fleet.domain.task import Task
from agent_fleet.domain.values import Artifact, Usage


class Clock(Protocol):
    def now(self) -> datetime: ...


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """An event as stored: with its global, gap-free position `seq`."""

    seq: int
    event: AnyEvent


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskQuery:
    state: TaskState | None = None
    agent_id: str | None = None
    repo: str | None = None
    issue_number: int | None = None
    limit: int = 100
    #: Keyset cursor: the (created_at, task_id) of the last task of the previous page.
    after: tuple[datetime, str] | None = None
    #: The biggest spenders first (USD, then tokens) instead of the newest; no cursor.
    by_spend: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentQuery:
    status: AgentStatus | None = None
    capability: str | None = None
    mode: AgentMode | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Heartbeat:
    agent_id: AgentId
    at: datetime


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
    async def read_cursor(self, name: str) -> int: ...
    async def advance_cursor(self, name: str, seq: int) -> None: ...
    async def all_projections(self) -> tuple[list[Task], list[Agent]]: ...
    async def replace_projections(self, tasks: Sequence[Task], agents: Sequence[Agent]) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ForgePull:
    """A pull request as the forge reports it."""

    number: int
    url: str
    head_branch: str
    body: str
    merged: bool
    closed: bool
    #: The repository the head branch lives in (another one for a fork's PR).
    head_repo: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ForgeIssue:
    repo: str
    number: int
    title: str
    body: str
    url: str | None
    labels: tuple[str, ...]


class Forge(Protocol):
    """The code forge people work in (Forgejo): only what the use cases ask of it."""

    async def can_write(self, repo: str, user: str) -> bool: ...
    async def pull_request_info(self, repo: str, number: int) -> ForgePull | None: ...
    async def open_pull_from(self, repo: str, branch: str) -> ForgePull | None:
        """The open PR whose head is `branch` of `repo` itself (never a fork's)."""
        ...

    async def default_branch(self, repo: str) -> str: ...
    async def create_pull(
        self, repo: str, *, head: str, base: str, title: str, body: str
    ) -> ForgePull:
        """Open a PR; raises PullRequestRefused when the forge will not (no such branch)."""
        ...

    async def comment(self, repo: str, number: int, body: str) -> bool: ...
    async def comment_bodies(self, repo: str, number: int) -> list[str]: ...
    async def open_issues(self, repo: str) -> list[ForgeIssue]: ...
    async def labelled_by(self, repo: str, number: int, prefix: str) -> str | None: ...
    async def repos(self) -> list[str]: ...
    async def close(self) -> None: ...


class Ticket(Protocol):
    """A long-poll's place in the line of waiting claimers (`TaskSignal.line_up`)."""

    def rejoin(self, appetite: Appetite) -> None:
        """About to look for work: a wake so far is answered by that look; back in line."""
        ...

    async def wait(self, timeout: float, until: asyncio.Event | None = None) -> bool:  # noqa: ASYNC109 -- a plain wait with a bound
        """True when woken (look again); False on timeout or once `until` is set."""
        ...

    def leave(self) -> None:
        """Out of line for good; a wake that no look answered goes to the next in line."""
        ...


class TaskSignal(Protocol):
    """Wakes waiters when work may have become available.

    Long-polls stand in line (`line_up`): a claimable task wakes one of them, the
    one waiting longest among those that could take it, not all of them. Watchers
    (`wait`: the ssh_cli dispatcher) wake on every notice.
    """

    def notify(self, opening: Opening | None = None) -> None:
        """Work may be available; with `opening`, exactly one task became claimable."""
        ...

    def wake_agent(self, agent_id: str) -> None:
        """This agent's lot changed (a slot freed, it went away): its long-polls look again."""
        ...

    def wake_all(self) -> None:
        """Every long-poll looks again (shutting down; notices may have been missed)."""
        ...

    def line_up(self, appetite: Appetite) -> Ticket: ...
    async def run(self, stop: asyncio.Event) -> None: ...
    async def wait(self, timeout: float) -> bool: ...  # noqa: ASYNC109 -- a plain wait with a bound


# --- ssh_cli: runs the orchestrator starts on its configured hosts -----------------


@dataclass(frozen=True, slots=True)
class RunKey:
    """One attempt of one task on one host: the identity of a detached run."""

    host_id: str
    task_id: TaskId
    attempt: int


class RunPhase(StrEnum):
    PREPARING = "preparing"  # workspace being set up, process not started yet
    ALIVE = "alive"
    EXITED = "exited"  # the CLI ended and its exit code is recorded
    VANISHED = "vanished"  # no process and no exit code: killed hard, or the host rebooted


@dataclass(frozen=True, slots=True)
class HostRun:
    key: RunKey
    phase: RunPhase
    exit_code: int | None
    age_secs: int  # since the run last changed (directory mtime)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOrder:
    key: RunKey
    agent_id: AgentId
    agent_type: str
    prompt: str
    repo: str | None
    branch: str
    lease: Lease
    #: The task's title: the commit message of what the run leaves uncommitted.
    title: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class RunResult:
    """What a finished run left: the receipt it wrote, else what its adapter read, plus
    what its delivery pushed (a `branch` artifact) and listed (`file` artifacts)."""

    completed: bool
    summary: str
    error: str | None = None
    artifacts: tuple[Artifact, ...] = ()
    usage: Usage | None = None


class HostRuns(Protocol):
    """Detached agent-CLI runs on the `[[hosts]]`. Every call may raise HostUnreachable;
    `launch` also LaunchFailed."""

    async def launch(self, order: RunOrder) -> None: ...
    async def survey(self, host_id: str) -> list[HostRun]: ...
    async def read_log(self, key: RunKey, offset: int, limit: int) -> bytes: ...
    async def result(self, key: RunKey, agent_type: str, exit_code: int | None) -> RunResult: ...
    def shows_progress(self, agent_type: str, output: bytes) -> bool:
        """Whether new output of a run of this type shows it moving (retry notices do not)."""
        ...

    async def stop(self, key: RunKey) -> None: ...
    async def remove(self, key: RunKey) -> None: ...
    async def purge(self, host_id: str, older_than_days: int, completed_after: timedelta) -> None:
        """Remove failed runs untouched for `older_than_days`, and completed runs marked
        (`mark_completed`) longer than `completed_after` ago."""
        ...

    async def mark_completed(self, key: RunKey) -> None:
        """The run's task completed: its workspace is kept until `purge` collects it."""
        ...

    async def close(self) -> None: ...
