"""What people look at: the agents with their load and last heartbeat, and the tasks counted
by state. Each is one read whatever the fleet's size (the dashboard polls them, and
`GET /api/v1/agents` lists the agents)."""

from dataclasses import dataclass
from datetime import datetime

from agent_fleet.domain.agent import Agent
from agent_fleet.ports.queries import AgentQuery
from agent_fleet.services.context import Context


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentLoad:
    agent: Agent
    #: Tasks it holds now (assigned or running).
    running: int
    #: None: it never beat (an ssh_cli slot, whose liveness is its runs).
    last_heartbeat: datetime | None


class OverviewService:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    async def agents(self, query: AgentQuery | None = None) -> list[AgentLoad]:
        store = self._ctx.store
        agents = await store.list_agents(query or AgentQuery())
        running = await store.running_counts()
        beats = await store.last_heartbeats()
        return [
            AgentLoad(
                agent=a, running=running.get(a.agent_id, 0), last_heartbeat=beats.get(a.agent_id)
            )
            for a in agents
        ]

    async def task_counts(self) -> dict[str, int]:
        """Tasks by state (`TaskState` values; a state without tasks is absent)."""
        return await self._ctx.store.count_tasks_by_state()

    async def check_store(self) -> None:
        """Raises StoreError unless the store answers a read (`/healthz`)."""
        await self._ctx.store.count_tasks_by_state()
