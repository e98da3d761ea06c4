"""Handing work to pull agents: redelivery first, then one atomic claim, else a long-poll."""

from dataclasses import dataclass
from datetime import timedelta

from agent_fleet.domain.agent import Agent
from agent_fleet.domain.errors import AgentNotFound, AgentUnavailable
from agent_fleet.domain.events import TaskAssigned
from agent_fleet.domain.ids import Lease
from agent_fleet.domain.states import AgentMode, AgentStatus, ExecutionMode, TaskState
from agent_fleet.domain.task import Task
from agent_fleet.services.agents import AgentService
from agent_fleet.services.context import Context
from agent_fleet.services.tasks import new_lease

PULL_MODES = frozenset({ExecutionMode.UNDECIDED, ExecutionMode.HTTP_PULL})


@dataclass(frozen=True, slots=True, kw_only=True)
class Handout:
    task: Task
    lease: Lease


class DequeueService:
    def __init__(self, ctx: Context, agents: AgentService) -> None:
        self._ctx = ctx
        self._agents = agents
        self._closing = False

    def close(self) -> None:
        """Shutting down: waiting long-polls return empty now instead of holding the exit."""
        self._closing = True
        self._ctx.signal.notify()

    async def dequeue(
        self, agent_id: str, capabilities: list[str] | None, wait: timedelta
    ) -> Handout | None:
        agent = await self._pull_agent(agent_id)
        agent = await self._agents.touch(agent)
        if capabilities is not None:
            agent = await self._agents.declare_capabilities(agent, capabilities)
        redelivered = await self._unstarted(agent)
        if redelivered is not None:
            return redelivered
        wait = min(wait, self._ctx.options.long_poll_max)
        loop_deadline = self._ctx.clock.now() + wait
        while True:
            now = self._ctx.clock.now()
            task = await self._ctx.store.claim_task(agent, PULL_MODES, new_lease(), now)
            if task is not None:
                self._ctx.observe([_assigned_event(task)])
                assert task.lease is not None  # an assigned task always carries its lease
                return Handout(task=task, lease=task.lease)
            remaining = (loop_deadline - self._ctx.clock.now()).total_seconds()
            if self._closing or remaining <= 0 or not await self._ctx.signal.wait(remaining):
                return None

    async def _pull_agent(self, agent_id: str) -> Agent:
        agent = await self._agents.get(agent_id)
        if agent.status is AgentStatus.DEREGISTERED:
            raise AgentNotFound(agent_id)
        if agent.mode is not AgentMode.HTTP_PULL:
            raise AgentUnavailable(agent_id, f"an {agent.mode} agent (it does not pull)")
        return agent

    async def _unstarted(self, agent: Agent) -> Handout | None:
        """A lost dequeue reply loses nothing: the same task and lease come back."""
        for task in await self._ctx.store.held_tasks(agent.agent_id):
            if task.state is TaskState.ASSIGNED and task.lease is not None:
                return Handout(task=task, lease=task.lease)
        return None


def _assigned_event(task: Task) -> TaskAssigned:
    """The event the store's claim appended, rebuilt from the claimed task for observers."""
    assert task.agent_id is not None and task.lease is not None and task.assigned_at is not None
    return TaskAssigned(
        stream_id=task.task_id,
        version=task.version,
        at=task.assigned_at,
        actor=task.agent_id,
        agent_id=task.agent_id,
        host_id=task.host_id,
        attempt=task.attempt,
        lease=task.lease,
    )
