"""Handing work to pull agents: redelivery first, then one atomic claim, else a long-poll.

A long-poll stands in the signal's line while it waits, and only for as long as
someone is there to answer: it ends when its client disconnects (`gone`), when
its agent goes offline or away (the claim checks, in its transaction), or when
the server shuts down. A task claimed just as the client left goes straight back.
"""

import asyncio
import contextlib
from dataclasses import dataclass, replace
from datetime import timedelta

from agent_fleet.domain import task as task_model
from agent_fleet.domain.agent import Agent
from agent_fleet.domain.errors import AgentNotFound, AgentUnavailable, FleetError
from agent_fleet.domain.events import TaskAssigned, TaskEvent
from agent_fleet.domain.ids import Lease
from agent_fleet.domain.matching import Appetite
from agent_fleet.domain.states import AgentMode, AgentStatus, ExecutionMode, TaskState
from agent_fleet.domain.task import Task
from agent_fleet.ports.signal import Ticket
from agent_fleet.services.agents import AgentService
from agent_fleet.services.commit import decide_task
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
        self._ctx.signal.wake_all()

    async def dequeue(
        self,
        agent: Agent,
        capabilities: list[str] | None,
        wait: timedelta,
        gone: asyncio.Event | None = None,
    ) -> Handout | None:
        """Work for `agent` (as the request's authentication loaded it); `gone` is set when
        the client that asked has disconnected."""
        agent_id = agent.agent_id
        _check_pulls(agent)
        agent = await self._agents.touch(agent)
        if capabilities is not None:
            # The original's agents declare what they take with each dequeue: it updates
            # the declared set (docs/migrating-from-the-original.md).
            agent = await self._agents.declare_capabilities(agent, capabilities)
        appetite = Appetite(agent.agent_id, frozenset(agent.capabilities), PULL_MODES)
        deadline = self._ctx.clock.now() + min(wait, self._ctx.options.long_poll_max)
        # In line before the first look: a task created during it still wakes us.
        ticket = self._ctx.signal.line_up(appetite)
        try:
            while not self._closing and not (gone is not None and gone.is_set()):
                handout = await self._look(agent, appetite, ticket)
                if handout is not None:
                    return await self._hand_over(handout, gone)
                remaining = (deadline - self._ctx.clock.now()).total_seconds()
                if remaining <= 0 or not await ticket.wait(remaining, until=gone):
                    return None
            return None
        except AgentUnavailable as e:  # it went offline or away while its poll waited
            if e.status == AgentStatus.DEREGISTERED:
                raise AgentNotFound(agent_id) from e
            return None
        finally:
            ticket.leave()  # a wake we did not answer goes to the next in line

    async def _look(self, agent: Agent, appetite: Appetite, ticket: Ticket) -> Handout | None:
        """One look for work, one store call: a task assigned and not started, else a claim."""
        cleared = ticket.rejoin(appetite)  # this look answers every wake so far ...
        now = self._ctx.clock.now()
        take = await self._ctx.store.take_task(agent, PULL_MODES, new_lease(), now)
        if take.task is not None and take.claimed:
            self._ctx.observe([_assigned_event(take.task)])
        elif cleared is not None and (take.full or take.task is not None):
            # ... unless it attempted no claim (full, or handed a held task again): the
            # task that opened is someone else's to take. (A claim that found nothing did
            # answer it: another took that task.)
            self._ctx.signal.notify(cleared)
        if take.full:
            # Full: only its own slot freeing (or its going away) can change that.
            woken = ticket.rejoin(replace(appetite, capabilities=frozenset(), modes=frozenset()))
            if woken is not None:
                self._ctx.signal.notify(woken)
            return None
        if take.task is None:
            return None
        assert take.task.lease is not None  # an assigned task always carries its lease
        return Handout(task=take.task, lease=take.task.lease)  # a lost reply loses nothing

    async def _hand_over(self, handout: Handout, gone: asyncio.Event | None) -> Handout | None:
        """The reply, unless its client left meanwhile: then the task goes straight back."""
        if gone is None or not gone.is_set():
            return handout
        now, lease = self._ctx.clock.now(), handout.lease

        def release(t: Task) -> list[TaskEvent]:
            if t.lease != lease or t.state is not TaskState.ASSIGNED:
                return []
            return task_model.release(t, "its agent's request was gone", now, "dequeue")

        with contextlib.suppress(FleetError):  # else the sweep takes it back once it is offline
            await decide_task(self._ctx, handout.task.task_id, release)
        return None


def _check_pulls(agent: Agent) -> None:
    if agent.status is AgentStatus.DEREGISTERED:
        raise AgentNotFound(agent.agent_id)
    if agent.mode is not AgentMode.HTTP_PULL:
        raise AgentUnavailable(agent.agent_id, f"an {agent.mode} agent (it does not pull)")


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
