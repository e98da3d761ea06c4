"""Holds: a waiting task that may not be claimed yet (its repository spent its daily
budget), and its release. Decisions as in `domain/task.py`: state in, events out."""

from datetime import datetime

from agent_fleet.domain.budget import Spend, repo_hold
from agent_fleet.domain.errors import InvalidTransition
from agent_fleet.domain.events import TaskEvent, TaskHeld, TaskHoldLifted
from agent_fleet.domain.states import TaskState
from agent_fleet.domain.task import Task


def hold_for_budget(
    task: Task, spent_today: Spend, limit: float, now: datetime, actor: str
) -> list[TaskEvent]:
    """A waiting task of a repository that spent its daily budget is held to the next day."""
    if task.state is not TaskState.CREATED:
        raise InvalidTransition(task.task_id, task.state, "hold")
    repo = task.source.repo
    hold = repo_hold(repo, spent_today, limit, now) if repo else None
    if hold is None or task.hold is not None:
        return []
    return [
        TaskHeld(
            **task.envelope(now, actor),
            message=hold.reason,
            until=hold.until,
        )
    ]


def release(task: Task, now: datetime, actor: str, *, manual: bool) -> list[TaskEvent]:
    """A held task may be claimed again: its day has come, or an operator retried it."""
    if task.state is not TaskState.CREATED or task.hold is None:
        raise InvalidTransition(task.task_id, task.state, "release")
    return [TaskHoldLifted(**task.envelope(now, actor), manual=manual)]


def is_release_due(task: Task, now: datetime) -> bool:
    return task.state is TaskState.CREATED and task.hold is not None and task.hold.until <= now
