"""What happened to tasks, as flat facts read off their event histories (pure).

A report (`domain/report.py`) counts these facts in a time window. Each history is
folded with the same `evolve` as the projections, so a fact means exactly what
the lifecycle says: a task waits in the queue from `task.created`, `task.retried`
or a re-route of an assigned task until it is assigned (or cancelled); a run lasts
from its assignment until the task stops being held.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from agent_fleet.domain import task as task_model
from agent_fleet.domain.budget import Spend, receipt_of
from agent_fleet.domain.events import (
    TaskAgentLost,
    TaskAssigned,
    TaskCancelled,
    TaskCompleted,
    TaskCreated,
    TaskEvent,
    TaskFailed,
)
from agent_fleet.domain.states import HELD_STATES, FailureReason, TaskState
from agent_fleet.domain.task import Task

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
    tasks: dict[str, Task] = {}
    entered: dict[str, datetime] = {}
    for event in events:
        before = tasks.get(event.stream_id)
        if before is None and not isinstance(event, TaskCreated):
            continue  # a history we hold only the tail of: nothing in it can be placed
        after = task_model.evolve(before, event)
        tasks[event.stream_id] = after
        _queue(facts, entered, before, after, event)
        _run(facts, before, after, event)
        _outcome(facts, before, after, event)
        _spend(facts, after, event)
    facts.queued += [Queued(at, None) for at in entered.values()]
    return facts


def _queue(
    facts: Facts, entered: dict[str, datetime], before: Task | None, after: Task, event: TaskEvent
) -> None:
    if isinstance(event, TaskCreated):
        facts.created.append(event.at)
    was_waiting = before is not None and before.state is TaskState.CREATED
    if after.state is TaskState.CREATED and not was_waiting:
        entered[event.stream_id] = event.at
    elif was_waiting and after.state is not TaskState.CREATED:
        since = entered.pop(event.stream_id, event.at)
        facts.queued.append(Queued(since, event.at))
        if isinstance(event, TaskAssigned):
            seconds = (event.at - since).total_seconds()
            facts.waited.append(Waited(event.at, seconds, event.agent_id, event.host_id))


def _run(facts: Facts, before: Task | None, after: Task, event: TaskEvent) -> None:
    if before is None or before.state not in HELD_STATES or after.state not in RUN_RESULTS:
        return
    if before.agent_id is None or before.assigned_at is None:
        return
    seconds = (event.at - before.assigned_at).total_seconds()
    facts.ran.append(Ran(event.at, seconds, before.agent_id, before.host_id))


def _outcome(facts: Facts, before: Task | None, after: Task, event: TaskEvent) -> None:
    holder = before.agent_id if before is not None else None
    host = before.host_id if before is not None else None
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


def _spend(facts: Facts, after: Task, event: TaskEvent) -> None:
    receipt = receipt_of(event)
    if receipt is None or receipt.usage is None:
        return
    # Counted exactly as the task's own ledger counts it, so the facts add up to it.
    one = Spend().plus(receipt.usage)
    facts.charged.append(
        Charged(event.at, after.source.repo, receipt.agent_id, one.tokens, one.cost_usd)
    )
