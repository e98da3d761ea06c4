"""Rebuild the projections from the events alone and compare with what was stored."""

from dataclasses import dataclass, field

from agent_fleet.domain import agent as agent_model
from agent_fleet.domain.agent import Agent
from agent_fleet.domain.events import TaskEvent
from agent_fleet.domain.task import Task, TaskReplay
from agent_fleet.ports.store import EventStore, ProjectionDifference

#: Events read per page: the store reads the next page while this one is folded.
REPLAY_BATCH = 5000

_SAYS = {
    "missing": "missing from the projection",
    "extra": "in the projection but has no events",
    "differs": "projection differs from the replay",
}


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
    tasks = TaskReplay()
    agents: dict[str, Agent] = {}
    count = 0
    async for page in store.event_batches(batch=REPLAY_BATCH):
        count += len(page)
        for recorded in page:
            event = recorded.event
            if isinstance(event, TaskEvent):
                tasks.apply(event)
            else:
                agents[event.stream_id] = agent_model.evolve(agents.get(event.stream_id), event)
    return tasks.tasks(), agents, count


async def rebuild(store: EventStore, *, write: bool) -> RebuildReport:
    """Replay every event; list each projection row that differs; optionally rewrite them.

    The store compares its rows in their stored form with the replay encoded the same
    way, and rewrites only the rows that differ (the end state is the replay's)."""
    tasks, agents, count = await replay_all(store)
    found = await store.reconcile_projections(tasks, agents, write=write)
    report = RebuildReport(events=count, tasks=len(tasks), agents=len(agents))
    report.differences = [_describe(d) for d in sorted(found, key=_order)]
    return report


def _order(difference: ProjectionDifference) -> tuple[bool, str]:
    return difference.kind != "task", difference.key  # tasks first, then agents; by key


def _describe(difference: ProjectionDifference) -> str:
    return f"{difference.kind} {difference.key}: {_SAYS[difference.problem]}"
