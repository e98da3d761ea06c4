"""Handing work to pull agents: who may dequeue, what they get, and the long-poll."""

import asyncio
from datetime import timedelta

import pytest

from agent_fleet.domain.errors import AgentNotFound, AgentUnavailable
from agent_fleet.domain.events import TaskAssigned
from agent_fleet.domain.ids import AgentId
from agent_fleet.domain.states import AgentStatus, ExecutionMode, TaskState
from agent_fleet.ports.hosts import HostSlot
from tests.service.world import World, run

NOW = timedelta(0)


def test_unknown_deregistered_and_pushed_agents_cannot_dequeue() -> None:
    async def scenario() -> None:
        world = World()
        with pytest.raises(AgentNotFound):
            await world.fleet.dequeue.dequeue(await world.fleet.agents.get("nobody"), None, NOW)
        await world.agent("gone")
        await world.fleet.agents.deregister(await world.fleet.agents.get("gone"))
        with pytest.raises(AgentNotFound):
            await world.fleet.dequeue.dequeue(await world.fleet.agents.get("gone"), None, NOW)
        # An ssh_cli slot is an agent the dispatcher drives; it does not pull.
        from agent_fleet.services.dispatch import Dispatcher
        from tests.unit.test_dispatcher import ScriptedHosts

        slot = HostSlot(
            host_id="h", hostname="h", agent_type="codex", capabilities=(), max_concurrency=1
        )
        dispatcher = Dispatcher(world.ctx, world.fleet.tasks, ScriptedHosts(), [slot], 7)
        await dispatcher.register_slots()
        with pytest.raises(AgentUnavailable):
            await world.fleet.dequeue.dequeue(await world.fleet.agents.get("h/codex"), None, NOW)

    run(scenario())


def test_the_best_matching_task_first_and_only_within_capacity() -> None:
    async def scenario() -> None:
        world = World()
        await world.agent("py", caps=("code", "python"), slots=2)
        await world.task("rust", caps=("rust",))
        old = await world.task("old", caps=("code",))
        world.later(1)
        urgent = await world.task("urgent", caps=("python",), priority=10)
        await world.task("pushed", caps=("code",), execution_mode=ExecutionMode.SSH_CLI)
        world.later(1)
        newer = await world.task("newer", caps=("code",))

        async def take() -> str:
            handout = await world.fleet.dequeue.dequeue(
                await world.fleet.agents.get("py"), None, NOW
            )
            assert handout is not None
            task_id = handout.task.task_id
            # Started: a dequeue returns an unstarted task again (its reply may be lost).
            await world.fleet.tasks.report_status(
                task_id, "py", handout.lease, TaskState.RUNNING, None, None
            )
            return task_id

        # Higher priority first, then older; another's capability, or ssh_cli, never.
        assert [await take(), await take()] == [urgent.task_id, old.task_id]
        # Both slots are taken; a finished task frees one.
        assert (
            await world.fleet.dequeue.dequeue(await world.fleet.agents.get("py"), None, NOW) is None
        )
        await world.fleet.tasks.cancel(old.task_id)
        assert await take() == newer.task_id
        # Observers (metrics) hear of every claim, as of every appended event.
        claimed = [e.stream_id for e in world.observed if isinstance(e, TaskAssigned)]
        assert claimed == [urgent.task_id, old.task_id, newer.task_id]

    run(scenario())


def test_capabilities_sent_with_a_dequeue_update_what_the_agent_takes() -> None:
    """The original's agents declare their capabilities with each dequeue: the set they
    send becomes the agent's declared set (docs/migrating-from-the-original.md)."""

    async def scenario() -> None:
        world = World()
        await world.agent("a", caps=("code", "docs"))
        code = await world.task("code", caps=("code",))
        world.later(1)
        rust = await world.task("rust", caps=("rust",))
        got = await world.fleet.dequeue.dequeue(await world.fleet.agents.get("a"), ["rust"], NOW)
        assert got is not None and got.task.task_id == rust.task_id  # the older one skipped
        assert (await world.get(code.task_id)).state is TaskState.CREATED
        assert (await world.fleet.agents.get("a")).capabilities == ("rust",)
        kinds = await world.types("a")
        assert kinds == ["agent.registered", "agent.registered"]  # the change, recorded once
        await world.fleet.dequeue.dequeue(await world.fleet.agents.get("a"), ["rust"], NOW)
        assert await world.types("a") == kinds  # the same set again records nothing

    run(scenario())


def test_a_lost_reply_loses_nothing_the_same_task_and_lease_come_back() -> None:
    async def scenario() -> None:
        world = World()
        await world.agent("a", slots=3)
        await world.task("one")
        await world.task("two")
        first = await world.fleet.dequeue.dequeue(await world.fleet.agents.get("a"), None, NOW)
        again = await world.fleet.dequeue.dequeue(await world.fleet.agents.get("a"), None, NOW)
        assert first is not None and again is not None
        assert (again.task.task_id, again.lease) == (first.task.task_id, first.lease)
        assert await world.types(first.task.task_id) == ["task.created", "task.assigned"]

    run(scenario())


def test_a_long_poll_wakes_when_a_matching_task_arrives() -> None:
    async def scenario() -> None:
        world = World()
        await world.agent("waiter", caps=("docs",))
        waiting = asyncio.create_task(
            world.fleet.dequeue.dequeue(
                await world.fleet.agents.get("waiter"), None, timedelta(seconds=30)
            )
        )
        await asyncio.sleep(0.05)
        await world.task("other", caps=("rust",))  # wakes it, but it does not match
        await asyncio.sleep(0.05)
        assert not waiting.done()
        made = await world.task("docs", caps=("docs",))
        got = await asyncio.wait_for(waiting, timeout=30)
        assert got is not None and got.task.task_id == made.task_id

    run(scenario())


def test_a_long_poll_ends_empty_at_its_bound_or_when_the_server_closes() -> None:
    async def scenario() -> None:
        world = World()
        await world.agent("a")
        assert (
            await world.fleet.dequeue.dequeue(
                await world.fleet.agents.get("a"), None, timedelta(seconds=0.05)
            )
            is None
        )
        waiting = asyncio.create_task(
            world.fleet.dequeue.dequeue(await world.fleet.agents.get("a"), None, timedelta(hours=1))
        )
        await asyncio.sleep(0.05)
        world.fleet.dequeue.close()
        assert await asyncio.wait_for(waiting, timeout=30) is None

    run(scenario())


def test_a_dequeue_proves_an_offline_agent_alive() -> None:
    async def scenario() -> None:
        world = World()
        await world.agent("a")
        world.later(31)
        assert await world.fleet.sweeper.detect_lost_agents() == 1
        await world.fleet.dequeue.dequeue(await world.fleet.agents.get("a"), None, NOW)
        agent = await world.store.get_agent(AgentId("a"))
        assert agent is not None and agent.status is AgentStatus.ONLINE
        assert await world.store.last_heartbeat(AgentId("a")) == world.clock.now()

    run(scenario())
