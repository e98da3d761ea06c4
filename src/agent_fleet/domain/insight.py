"""What happened to tasks, as flat facts read off their event histories (pure).

A report (`domain/report.py`) counts these facts in a time window. Each history is
read with the lifecycle's own states (`lifecycle.state_after`, which `task.evolve` folds
by too): a task waits in the queue from `task.created`, `task.retried` or a
re-route of an assigned task until it is assigned (or cancelled); a run lasts from its
assignment until the task stops being held.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from agent_fleet.domain.budget import Spend, receipt_of
from agent_fleet.domain.events import (
    TaskAgentLost,
    TaskAssigned,
    TaskCancelled,
    TaskCompleted,
    TaskCreated,
    TaskEvent,
    TaskFailed,
    TaskReleased,
    TaskRerouted,
    TaskRetried,
)
from agent_fleet.domain.lifecycle import state_after
from agent_fleet.domain.states import HELD_STATES, FailureReason, TaskState

#: States that end a run with a result (a re-route or a cancel ends it with none).
RUN_RESULTS = frozenset(
    {TaskState.REVIEW_PENDING, TaskState.COMPLETED, TaskState.FAILED, TaskState.AGENT_LOST}
)


@dataclass(frozen=True, slots=True)
class Queued:
    """A stretch in the queue, [entered, left); `left` None: still waiting."""

    entered: datetime
    left: datetime | None


@dataclass(frozen=True, slots=True)
class Waited:
    """An assignment, and how long the task had waited for it."""

    at: datetime
    seconds: float
    agent_id: str
    host_id: str | None


@dataclass(frozen=True, slots=True)
class Ran:
    """A run that ended with a result, and how long the agent held the task."""

    at: datetime
    seconds: float
    agent_id: str
    host_id: str | None


@dataclass(frozen=True, slots=True)
class Ended:
    """An outcome: `completed`, `failed` (with its reason) or `cancelled`."""

    at: datetime
    outcome: str
    reason: str | None
    agent_id: str | None
    host_id: str | None


@dataclass(frozen=True, slots=True)
class Charged:
    """The usage one receipt reported."""

    at: datetime
    repo: str | None
    agent_id: str
    tokens: int
    cost_usd: float


@dataclass(slots=True)
class Facts:
    created: list[datetime] = field(default_factory=list)
    queued: list[Queued] = field(default_factory=list)
    waited: list[Waited] = field(default_factory=list)
    ran: list[Ran] = field(default_factory=list)
    ended: list[Ended] = field(default_factory=list)
    charged: list[Charged] = field(default_factory=list)

    def extend(self, other: "Facts") -> None:
        """Add the facts of other histories (facts of one task never span two sheets)."""
        self.created += other.created
        self.queued += other.queued
        self.waited += other.waited
        self.ran += other.ran
        self.ended += other.ended
        self.charged += other.charged


def facts_of(events: Iterable[TaskEvent]) -> Facts:
    """Facts of every history in `events` (each stream's events in order, streams mixed)."""
    facts = Facts()
    tracks: dict[str, _Track] = {}
    for event in events:
        track = tracks.get(event.stream_id)
        if track is None:
            if isinstance(event, TaskCreated):  # else a history's tail: nothing can be placed
                tracks[event.stream_id] = _Track(repo=event.source.repo, entered=event.at)
                facts.created.append(event.at)
            continue
        after = state_after(track.state, event)
        _queue(facts, track, after, event)
        _run(facts, track, after, event)
        _outcome(facts, track, event)
        _charge(facts, track, event)
        track.follow(event, after)
    facts.queued += [Queued(t.entered, None) for t in tracks.values() if t.entered is not None]
    return facts


@dataclass(slots=True)
class _Track:
    """What the facts need of a task while its history is read: a few fields, not the whole
    aggregate (copying a `Task` per event would cost most of a report's time)."""

    repo: str | None
    entered: datetime | None  # in the queue since, while waiting
    state: TaskState = TaskState.CREATED
    agent_id: str | None = None
    host_id: str | None = None
    assigned_at: datetime | None = None

    def follow(self, event: TaskEvent, after: TaskState) -> None:
        self.state = after
        if isinstance(event, TaskAssigned):
            self.agent_id, self.host_id, self.assigned_at = event.agent_id, event.host_id, event.at
        elif isinstance(event, TaskRetried | TaskRerouted | TaskReleased):
            self.agent_id = self.host_id = self.assigned_at = None


def _queue(facts: Facts, track: _Track, after: TaskState, event: TaskEvent) -> None:
    waiting = track.state is TaskState.CREATED
    if after is TaskState.CREATED and not waiting:
        track.entered = event.at
    elif waiting and after is not TaskState.CREATED:
        since = track.entered or event.at
        track.entered = None
        facts.queued.append(Queued(since, event.at))
        if isinstance(event, TaskAssigned):
            seconds = (event.at - since).total_seconds()
            facts.waited.append(Waited(event.at, seconds, event.agent_id, event.host_id))


def _run(facts: Facts, track: _Track, after: TaskState, event: TaskEvent) -> None:
    if track.state not in HELD_STATES or after not in RUN_RESULTS:
        return
    if track.agent_id is None or track.assigned_at is None:
        return
    seconds = (event.at - track.assigned_at).total_seconds()
    facts.ran.append(Ran(event.at, seconds, track.agent_id, track.host_id))


def _outcome(facts: Facts, track: _Track, event: TaskEvent) -> None:
    holder, host = track.agent_id, track.host_id
    match event:
        case TaskCompleted():
            facts.ended.append(Ended(event.at, "completed", None, holder, host))
        case TaskFailed():
            facts.ended.append(Ended(event.at, "failed", event.reason.value, holder, host))
        case TaskAgentLost():
            reason = FailureReason.AGENT_LOST.value
            facts.ended.append(Ended(event.at, "failed", reason, holder, host))
        case TaskCancelled():
            facts.ended.append(Ended(event.at, "cancelled", None, holder, host))
        case _:
            pass


def _charge(facts: Facts, track: _Track, event: TaskEvent) -> None:
    receipt = receipt_of(event)
    if receipt is None or receipt.usage is None:
        return
    # Counted exactly as the task's own ledger counts it, so the facts add up to it.
    one = Spend().plus(receipt.usage)
    facts.charged.append(Charged(event.at, track.repo, receipt.agent_id, one.tokens, one.cost_usd))
