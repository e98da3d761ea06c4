"""Routing: which agent may take a task, which of them should, and which task goes first."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from agent_fleet.domain.states import HELD_STATES, ExecutionMode, TaskState
from agent_fleet.domain.task import Task


def can_serve(agent_capabilities: Iterable[str], required: Iterable[str]) -> bool:
    """Every required capability must be among the agent's."""
    return set(required) <= set(agent_capabilities)


@dataclass(frozen=True, slots=True, kw_only=True)
class Slot:
    """One agent's capacity as the router sees it."""

    agent_id: str
    capabilities: tuple[str, ...]
    running: int
    max_concurrency: int

    @property
    def load(self) -> float:
        return self.running / self.max_concurrency if self.max_concurrency > 0 else 1.0

    @property
    def has_room(self) -> bool:
        return self.running < self.max_concurrency


def pick_slot(required: Iterable[str], slots: Sequence[Slot]) -> Slot | None:
    """The least loaded matching agent with room; ties go to the lowest id (stable)."""
    needed = tuple(required)
    candidates = [s for s in slots if s.has_room and can_serve(s.capabilities, needed)]
    if not candidates:
        return None
    return min(candidates, key=lambda s: (s.load, s.agent_id))


@dataclass(frozen=True, slots=True, kw_only=True)
class QueuedTask:
    task_id: str
    priority: int
    created_at: datetime
    required_capabilities: tuple[str, ...]


def queue_order(task: QueuedTask) -> tuple[int, datetime, str]:
    """Higher priority first, then oldest first, then id for a total order."""
    return (-task.priority, task.created_at, task.task_id)


def next_task_for(capabilities: Iterable[str], queue: Iterable[QueuedTask]) -> QueuedTask | None:
    caps = tuple(capabilities)
    matching = [t for t in queue if can_serve(caps, t.required_capabilities)]
    return min(matching, key=queue_order) if matching else None


# --- waking waiters: what became claimable, and who could take it -------------------


@dataclass(frozen=True, slots=True)
class Opening:
    """One task became claimable: what an agent needs to take it."""

    capabilities: frozenset[str]
    mode: ExecutionMode


@dataclass(frozen=True, slots=True)
class Appetite:
    """What one waiting claimer (a long-poll) could take."""

    agent_id: str
    capabilities: frozenset[str]
    modes: frozenset[ExecutionMode]

    def takes(self, opening: Opening) -> bool:
        return opening.mode in self.modes and opening.capabilities <= self.capabilities


def opening_of(before: Task | None, after: Task) -> Opening | None:
    """The opening a change made: the task is claimable now and was not (or changed)."""
    if after.state is not TaskState.CREATED:
        return None
    if before is not None and before.state is TaskState.CREATED and before.version == after.version:
        return None
    return Opening(frozenset(after.required_capabilities), after.execution_mode)


def freed_holder(before: Task | None, after: Task) -> str | None:
    """The agent a change freed a slot of: it held the task and no longer does."""
    if before is None or before.state not in HELD_STATES or before.agent_id is None:
        return None
    still_holds = after.state in HELD_STATES and after.agent_id == before.agent_id
    return None if still_holds else before.agent_id
