"""Rebuild the projections from the events alone and compare with what was stored."""

from collections.abc import Mapping
from dataclasses import dataclass, field

from agent_fleet.domain import agent as agent_model
from agent_fleet.domain import task as task_model
from agent_fleet.domain.agent import Agent
from agent_fleet.domain.events import TaskEvent
from agent_fleet.domain.task import Task
from agent_fleet.ports.store import EventStore


@dataclass(slots=True)
class RebuildReport:
    events: int = 0
    tasks: int = 0
    agents: int = 0
    differences: list[str] = field(default_factory=list)

    @property
    def matches(self) -> bool:
        return not self.differences


async def replay_all(store: EventStore) -> tuple[dict[str, Task], dict[str, Agent], int]:
    tasks: dict[str, Task] = {}
    agents: dict[str, Agent] = {}
    count = 0
    async for recorded in store.iter_events():
        event = recorded.event
        count += 1
        if isinstance(event, TaskEvent):
            tasks[event.stream_id] = task_model.evolve(tasks.get(event.stream_id), event)
        else:
            agents[event.stream_id] = agent_model.evolve(agents.get(event.stream_id), event)
    return tasks, agents, count


async def rebuild(store: EventStore, *, write: bool) -> RebuildReport:
    """Replay every event; list each projection row that differs; optionally rewrite them."""
    tasks, agents, count = await replay_all(store)
    stored_tasks, stored_agents = await store.all_projections()
    report = RebuildReport(events=count, tasks=len(tasks), agents=len(agents))
    report.differences += _diff("task", tasks, {t.task_id: t for t in stored_tasks})
    report.differences += _diff("agent", agents, {a.agent_id: a for a in stored_agents})
    if write:
        await store.replace_projections(list(tasks.values()), list(agents.values()))
    return report


def _diff(kind: str, replayed: Mapping[str, object], stored: Mapping[str, object]) -> list[str]:
    out = []
    for key in sorted(replayed.keys() | stored.keys()):
        if key not in stored:
            out.append(f"{kind} {key}: missing from the projection")
        elif key not in replayed:
            out.append(f"{kind} {key}: in the projection but has no events")
        elif replayed[key] != stored[key]:
            out.append(f"{kind} {key}: projection differs from the replay")
    return out
