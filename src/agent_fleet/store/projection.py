"""Folds appended events onto the stored projections; the same code for every backend."""

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from enum import Enum
from typing import Any, Generic, Literal, TypeVar

from pydantic_core import from_json

from agent_fleet.codec import encode_agent, encode_task, ts
from agent_fleet.domain import agent as agent_model
from agent_fleet.domain import task as task_model
from agent_fleet.domain.agent import Agent
from agent_fleet.domain.errors import ConcurrencyConflict
from agent_fleet.domain.events import AnyEvent, TaskEvent
from agent_fleet.domain.task import Task
from agent_fleet.ports.store import ProjectionDifference

T = TypeVar("T")


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
    row = task_columns(task)
    row["body"] = encode_task(task)
    return row


def task_columns(task: Task) -> dict[str, Any]:
    """The indexed columns of a task row (`task_row` without the body)."""
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
    }


def agent_row(agent: Agent) -> dict[str, Any]:
    return {
        "agent_id": agent.agent_id,
        "version": agent.version,
        "status": agent.status.value,
        "mode": agent.mode.value,
        "body": encode_agent(agent),
    }


#: The columns of a stored projection row, in the order `task_row`/`agent_row` give them
#: (the `projection_*_rows` queries select them in this order: `reconcile` compares tuples).
TASK_COLUMNS = (
    "task_id", "version", "state", "agent_id", "execution_mode", "priority",
    "required_capabilities", "repo", "issue_number", "created_at", "deadline_at", "retry_at",
    "held_until", "spent_usd", "spent_tokens", "body",
)  # fmt: skip
AGENT_COLUMNS = ("agent_id", "version", "status", "mode", "body")


@dataclass(slots=True)
class Reconciled:
    """What a comparison of stored rows with replayed objects found, and what to write."""

    differences: list[ProjectionDifference] = field(default_factory=list)
    writes: list[dict[str, Any]] = field(default_factory=list)  # rows to upsert
    drops: list[str] = field(default_factory=list)  # keys to delete

    @property
    def changes(self) -> bool:
        return bool(self.writes or self.drops)


class Reconcile(Generic[T]):
    """Compares stored rows `(key, *columns, body)`, page by page, with the replayed
    objects encoded as a write would encode them: an equal row costs one encode and a
    tuple comparison. A row that differs is rewritten, and reported when its stored
    object (decoded) is not the replayed one, as `db rebuild` has always compared."""

    def __init__(
        self,
        kind: Literal["task", "agent"],
        replayed: Mapping[str, T],
        row_of: Callable[[T], dict[str, Any]],
        decode: Callable[[str], T],
    ) -> None:
        self._kind: Literal["task", "agent"] = kind
        self._replayed = replayed
        self._row_of = row_of
        self._decode = decode
        self._seen: set[str] = set()
        self._out = Reconciled()

    def compare(self, stored: Iterable[tuple[Any, ...]]) -> None:
        out, seen = self._out, self._seen
        for row in stored:
            key = row[0]
            obj = self._replayed.get(key)
            if obj is None:
                out.differences.append(ProjectionDifference(self._kind, key, "extra"))
                out.drops.append(key)
                continue
            seen.add(key)
            encoded = self._row_of(obj)
            values = tuple(encoded.values())
            if values == row:
                continue
            same = _same_body(row[-1], values[-1], obj, self._decode)
            if same is _Same.DATA and values[:-1] == row[:-1]:
                continue  # the JSON as the database keeps it (PostgreSQL's JSONB)
            out.writes.append(encoded)
            if same is _Same.NOT:
                out.differences.append(ProjectionDifference(self._kind, key, "differs"))

    def done(self) -> Reconciled:
        out = self._out
        for key in self._replayed.keys() - self._seen:
            out.differences.append(ProjectionDifference(self._kind, key, "missing"))
            out.writes.append(self._row_of(self._replayed[key]))
        return out


class _Same(Enum):
    NOT = 0
    TEXT = 1  # byte for byte
    DATA = 2  # the same JSON, written differently (PostgreSQL's JSONB: key order, spacing)
    OBJECT = 3  # decoded, the same object (a body an older version wrote)


def _same_body(stored: Any, encoded: str, obj: object, decode: Callable[[str], object]) -> _Same:
    """How far a stored body holds `obj`."""
    if stored == encoded:
        return _Same.TEXT
    try:
        if from_json(stored) == from_json(encoded):
            return _Same.DATA
        return _Same.OBJECT if decode(stored) == obj else _Same.NOT
    except ValueError:  # not JSON, or not a valid object: it differs
        return _Same.NOT
