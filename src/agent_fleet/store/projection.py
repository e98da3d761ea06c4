"""Folds appended events onto the stored projections; the same code for every backend."""

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from agent_fleet.codec import encode_agent, encode_task, ts
from agent_fleet.domain import agent as agent_model
from agent_fleet.domain import task as task_model
from agent_fleet.domain.agent import Agent
from agent_fleet.domain.errors import ConcurrencyConflict
from agent_fleet.domain.events import AnyEvent, TaskEvent
from agent_fleet.domain.task import Task


@dataclass(slots=True)
class Projected:
    tasks: dict[str, Task] = field(default_factory=dict)
    agents: dict[str, Agent] = field(default_factory=dict)


def fold(
    events: Sequence[AnyEvent],
    load_task: Callable[[str], Task | None],
    load_agent: Callable[[str], Agent | None],
) -> Projected:
    """Apply events to the current projections, checking each stream's version continuity."""
    out = Projected()
    for event in events:
        if isinstance(event, TaskEvent):
            current_task = out.tasks.get(event.stream_id) or load_task(event.stream_id)
            _check_version(event, current_task.version if current_task else 0)
            out.tasks[event.stream_id] = task_model.evolve(current_task, event)
        else:
            current_agent = out.agents.get(event.stream_id) or load_agent(event.stream_id)
            _check_version(event, current_agent.version if current_agent else 0)
            out.agents[event.stream_id] = agent_model.evolve(current_agent, event)
    return out


def _check_version(event: AnyEvent, current: int) -> None:
    if event.version != current + 1:
        raise ConcurrencyConflict(event.stream_id, event.version)


def task_row(task: Task) -> dict[str, Any]:
    """The indexed columns of a task row, plus its whole body."""
    deadline = (
        ts(task.assigned_at + timedelta(seconds=task.timeout_secs))
        if task.is_held and task.assigned_at is not None
        else None
    )
    return {
        "task_id": task.task_id,
        "version": task.version,
        "state": task.state.value,
        "agent_id": task.agent_id,
        "execution_mode": task.execution_mode.value,
        "priority": task.priority,
        "required_capabilities": json.dumps(list(task.required_capabilities)),
        "repo": task.source.repo,
        "issue_number": task.source.issue_number,
        "created_at": ts(task.created_at),
        "deadline_at": deadline,
        "retry_at": ts(task.retry_at) if task.retry_at else None,
        "held_until": ts(task.hold.until) if task.hold else None,
        "spent_usd": task.spend.cost_usd,
        "spent_tokens": task.spend.tokens,
        "body": encode_task(task),
    }


def agent_row(agent: Agent) -> dict[str, Any]:
    return {
        "agent_id": agent.agent_id,
        "version": agent.version,
        "status": agent.status.value,
        "mode": agent.mode.value,
        "body": encode_agent(agent),
    }
