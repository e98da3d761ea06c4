"""What people look at: agents with their load and last heartbeat, tasks by state."""

from datetime import timedelta
from typing import Any

from agent_fleet.domain.ids import AgentId
from agent_fleet.ports.queries import AgentQuery
from agent_fleet.store.memory import InMemoryEventStore
from tests.service.world import World, run


class CountingStore(InMemoryEventStore):
    """Counts the reads the agent list makes."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []

    async def last_heartbeat(self, agent_id: AgentId) -> Any:
        self.reads.append("last_heartbeat")
        return await super().last_heartbeat(agent_id)

    async def last_heartbeats(self) -> Any:
        self.reads.append("last_heartbeats")
        return await super().last_heartbeats()


def test_the_agent_list_reads_every_heartbeat_at_once() -> None:
    async def scenario() -> None:
        world = World(store=CountingStore())
        for name in ("a", "b", "c"):
            await world.agent(name)
            world.later(1)
        await world.task("t")
        handout = await world.fleet.dequeue.dequeue(
            await world.fleet.agents.get("b"), None, timedelta(0)
        )
        assert handout is not None
        store = world.store
        assert isinstance(store, CountingStore)
        store.reads.clear()
        loads = await world.fleet.overview.agents(AgentQuery())
        assert store.reads == ["last_heartbeats"]  # one read, however many agents
        assert [(x.agent.agent_id, x.running) for x in loads] == [("a", 0), ("b", 1), ("c", 0)]
        beats = {x.agent.agent_id: x.last_heartbeat for x in loads}
        assert beats["a"] is not None and beats["c"] is not None and beats["a"] < beats["c"]
        assert await world.fleet.overview.task_counts() == {"assigned": 1}

    run(scenario())
