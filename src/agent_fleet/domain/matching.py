"""Routing: which agent may take a task, which of them should, and which task goes first."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime


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
