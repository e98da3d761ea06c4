"""Routing, the one rule: which agent may take a task, which task it takes first, which of
several agents goes first; and whom a change wakes.

The SQL stores' `claim` statements (store/sql/*/queries.sql) state the same rule in SQL
for one agent at a time; the contract tests hold all stores to it.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, TypeVar

from agent_fleet.domain.states import HELD_STATES, ExecutionMode, TaskState
from agent_fleet.domain.task import Task


class Queued(Protocol):
    """A task as routing sees it (a `Task` is one)."""

    @property
    def task_id(self) -> str: ...
    @property
    def priority(self) -> int: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def required_capabilities(self) -> tuple[str, ...]: ...


Q = TypeVar("Q", bound=Queued)


def can_serve(agent_capabilities: Iterable[str], required: Iterable[str]) -> bool:
    """Every required capability must be among the agent's."""
    return set(required) <= set(agent_capabilities)


def queue_order(task: Queued) -> tuple[int, datetime, str]:
    """Higher priority first, then oldest first, then id for a total order."""
    return (-task.priority, task.created_at, task.task_id)


def next_task_for(capabilities: Iterable[str], queue: Iterable[Q]) -> Q | None:
    """The task an agent with `capabilities` takes first from `queue` (claimable tasks)."""
    caps = frozenset(capabilities)
    matching = [t for t in queue if can_serve(caps, t.required_capabilities)]
    return min(matching, key=queue_order) if matching else None


@dataclass(frozen=True, slots=True, kw_only=True)
class Capacity:
    """One agent's room as the router sees it."""

    agent_id: str
    running: int
    max_concurrency: int

    @property
    def load(self) -> float:
        return self.running / self.max_concurrency if self.max_concurrency > 0 else 1.0

    @property
    def has_room(self) -> bool:
        return self.running < self.max_concurrency


def least_loaded(agents: Iterable[Capacity]) -> list[Capacity]:
    """The agents with room, least loaded first; ties go to the lowest id (stable)."""
    return sorted((a for a in agents if a.has_room), key=lambda a: (a.load, a.agent_id))


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
        return opening.mode in self.modes and can_serve(self.capabilities, opening.capabilities)


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
