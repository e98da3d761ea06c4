"""What reads ask the store for (`TaskQuery`, `AgentQuery`) and get back (`RecordedEvent`):
shared by the store port, the services, and the edges that show their answers."""

from dataclasses import dataclass
from datetime import datetime

from agent_fleet.domain.events import AnyEvent
from agent_fleet.domain.states import AgentMode, AgentStatus, TaskState


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
