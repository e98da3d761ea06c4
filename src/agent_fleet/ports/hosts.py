"""ssh_cli: runs the orchestrator starts on its configured `[[hosts]]`."""

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Protocol

from agent_fleet.domain.ids import AgentId, Lease, TaskId
from agent_fleet.domain.values import Artifact, Usage


@dataclass(frozen=True, slots=True, kw_only=True)
class HostSlot:
    """One `agents = [...]` entry of a `[[hosts]]` block: agent `<host_id>/<agent_type>`."""

    host_id: str
    hostname: str
    agent_type: str
    capabilities: tuple[str, ...]
    max_concurrency: int
    #: A run with no progress this long is stopped and fails `stalled` (None: never).
    idle_timeout: timedelta | None = None

    @property
    def agent_id(self) -> AgentId:
        return AgentId(f"{self.host_id}/{self.agent_type}")


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
