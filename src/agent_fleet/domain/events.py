"""Every fact the system records, as frozen dataclasses named in the past tense.

Each event belongs to one stream (a task or an agent) at one version; the pair
is unique, which is what makes concurrent writers safe. `actor` says who or
what caused it: an agent id, `operator`, a webhook delivery id, or a loop.
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypedDict

from agent_fleet.domain.ids import AgentId, Lease
from agent_fleet.domain.states import AgentMode, ExecutionMode, FailureReason, LossCause
from agent_fleet.domain.values import PullRequest, Receipt, Source


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    stream_id: str
    version: int
    at: datetime
    actor: str


class Envelope(TypedDict):
    """An event's envelope, as decisions fill it in (`Task.envelope`, `Agent.envelope`):
    `SomethingHappened(**task.envelope(now, actor), field=...)`."""

    stream_id: str
    version: int
    at: datetime
    actor: str


# --- task stream ----------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskCreated(Event):
    title: str
    prompt: str
    required_capabilities: tuple[str, ...]
    execution_mode: ExecutionMode
    priority: int
    max_retries: int
    timeout_secs: int
    source: Source


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskRerouted(Event):
    required_capabilities: tuple[str, ...]
    priority: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskAssigned(Event):
    agent_id: AgentId
    host_id: str | None
    attempt: int
    lease: Lease


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskStarted(Event):
    agent_id: AgentId
    attempt: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskProgress(Event):
    message: str | None
    progress: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskReviewPending(Event):
    receipt: Receipt
    pr: PullRequest


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskCompleted(Event):
    receipt: Receipt | None


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskFailed(Event):
    reason: FailureReason
    message: str
    receipt: Receipt | None = None
    #: When the automatic retry is due; None when no retry will follow.
    retry_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskAgentLost(Event):
    agent_id: AgentId | None
    message: str
    retry_at: datetime | None = None
    #: Set when we, not the agent, ended the attempt: it does not count against max_retries.
    cause: LossCause | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskReleased(Event):
    """An assignment nobody started was taken back (its agent went away): the task is
    open again, on the same attempt, because no work was done on it."""

    agent_id: AgentId | None
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskRetried(Event):
    attempt: int
    manual: bool
    #: A new prompt for this attempt (a review's requested changes), else None.
    prompt: str | None = None
    #: Sent back by a review that requested changes: the PR stays, a review round is used.
    review: bool = False
    #: It replaces an attempt the orchestrator's own crash ended (`TaskAgentLost.cause`):
    #: it does not count against max_retries.
    free: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskCancelled(Event):
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskPrUpdated(Event):
    pr: PullRequest


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskHeld(Event):
    """A waiting task may not be claimed until `until` (its repository's daily budget)."""

    message: str
    until: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskHoldLifted(Event):
    """A held task may be claimed again: its day came (`manual` false) or an operator said so."""

    manual: bool


TaskEvent = (
    TaskCreated
    | TaskRerouted
    | TaskAssigned
    | TaskStarted
    | TaskProgress
    | TaskReviewPending
    | TaskCompleted
    | TaskFailed
    | TaskAgentLost
    | TaskReleased
    | TaskRetried
    | TaskCancelled
    | TaskPrUpdated
    | TaskHeld
    | TaskHoldLifted
)


# --- agent stream ---------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentRegistered(Event):
    agent_type: str
    mode: AgentMode
    hostname: str | None
    capabilities: tuple[str, ...]
    max_concurrency: int
    metadata: dict[str, Any] = field(default_factory=dict)
    #: SHA-256 of the registry token: the token itself is never stored.
    token_sha256: str | None = None
    host_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentOnline(Event):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentOffline(Event):
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentDeregistered(Event):
    pass


AgentEvent = AgentRegistered | AgentOnline | AgentOffline | AgentDeregistered
AnyEvent = TaskEvent | AgentEvent

#: The wire names of event types (DESIGN §2), both ways.
EVENT_TYPES: dict[str, type[AnyEvent]] = {
    "task.created": TaskCreated,
    "task.rerouted": TaskRerouted,
    "task.assigned": TaskAssigned,
    "task.started": TaskStarted,
    "task.progress": TaskProgress,
    "task.review_pending": TaskReviewPending,
    "task.completed": TaskCompleted,
    "task.failed": TaskFailed,
    "task.agent_lost": TaskAgentLost,
    "task.released": TaskReleased,
    "task.retried": TaskRetried,
    "task.cancelled": TaskCancelled,
    "task.pr_updated": TaskPrUpdated,
    "task.held": TaskHeld,
    "task.hold_lifted": TaskHoldLifted,
    "agent.registered": AgentRegistered,
    "agent.online": AgentOnline,
    "agent.offline": AgentOffline,
    "agent.deregistered": AgentDeregistered,
}
EVENT_NAMES: dict[type[AnyEvent], str] = {cls: name for name, cls in EVENT_TYPES.items()}


def type_name(event: AnyEvent) -> str:
    return EVENT_NAMES[type(event)]


def is_task_event(event: AnyEvent) -> bool:
    return type_name(event).startswith("task.")
