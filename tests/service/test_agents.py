"""Agent use cases: registration (upsert, tokens), heartbeats and what to stop, leaving."""

from datetime import timedelta

import pytest

from agent_fleet.domain.errors import AgentNotFound
from agent_fleet.domain.ids import AgentId
from agent_fleet.domain.states import AgentMode, AgentStatus, TaskState
from agent_fleet.services.agents import RegisterAgent, token_matches
from tests.service.world import World, run

NOW = timedelta(0)


def test_registering_again_is_an_upsert_with_a_new_token() -> None:
    async def scenario() -> None:
        world = World()
        first = await world.agent("a", caps=("code", "code"))
        again = await world.agent("a", caps=("docs",), slots=3)
        agent = await world.store.get_agent(AgentId("a"))
        assert agent is not None
        assert (agent.capabilities, agent.max_concurrency, agent.mode) == (
            ("docs",),
            3,
            AgentMode.HTTP_PULL,
        )
        assert token_matches(agent, again) and not token_matches(agent, first)
        assert await world.types("a") == ["agent.registered", "agent.registered"]
        # Without an id, one is made from its type.
        named = await world.fleet.agents.register(
            RegisterAgent(
                agent_id=None, agent_type="codex", hostname="h", capabilities=(), max_concurrency=1
            )
        )
        assert named.agent.agent_id.startswith("codex-")

    run(scenario())


def test_a_heartbeat_from_an_unknown_or_deregistered_agent_is_refused() -> None:
    async def scenario() -> None:
        world = World()
        with pytest.raises(AgentNotFound):
            await world.fleet.agents.heartbeat("nobody", None)
        await world.agent("a")
        await world.fleet.agents.deregister(await world.fleet.agents.get("a"))
        with pytest.raises(AgentNotFound):
            await world.fleet.agents.heartbeat("a", None)

    run(scenario())


def test_heartbeats_say_which_tasks_to_stop() -> None:
    async def scenario() -> None:
        world = World()
        await world.agent("a", slots=3)
        kept, dropped = await world.task("kept"), await world.task("dropped")
        for _ in range(2):
            handout = await world.fleet.dequeue.dequeue(
                await world.fleet.agents.get("a"), None, NOW
            )
            assert handout is not None
            await world.fleet.tasks.report_status(
                handout.task.task_id, "a", handout.lease, TaskState.RUNNING, None, None
            )
        # An agent that says what it runs is told to stop what it no longer holds.
        await world.fleet.tasks.cancel(dropped.task_id)
        world.later(1)
        said = await world.fleet.agents.heartbeat("a", [kept.task_id, dropped.task_id, "stray"])
        assert said.cancel_tasks == [dropped.task_id, "stray"]
        # One that does not say is told of its tasks cancelled since its last beat, once.
        world.later(5)
        assert (await world.fleet.agents.heartbeat("a", None)).cancel_tasks == []
        world.later(5)
        await world.fleet.tasks.cancel(kept.task_id)
        world.later(1)
        assert (await world.fleet.agents.heartbeat("a", None)).cancel_tasks == [kept.task_id]
        world.later(5)
        assert (await world.fleet.agents.heartbeat("a", None)).cancel_tasks == []

    run(scenario())


def test_any_request_proves_an_agent_alive_but_costs_a_write_only_now_and_then() -> None:
    async def scenario() -> None:
        world = World()  # heartbeat interval 10 s: a touch is written at most every 2.5 s
        await world.agent("a")
        agent = await world.fleet.agents.get("a")
        registered_at = world.clock.now()
        world.later(1)
        await world.fleet.agents.touch(agent)
        touched_at = world.clock.now()
        world.later(1)
        await world.fleet.agents.touch(agent)
        assert await world.store.last_heartbeat(AgentId("a")) == touched_at != registered_at
        world.later(2)
        await world.fleet.agents.touch(agent)
        assert await world.store.last_heartbeat(AgentId("a")) == world.clock.now()

    run(scenario())


def test_deregistering_loses_the_agents_tasks_and_is_idempotent() -> None:
    async def scenario() -> None:
        world = World()
        await world.agent("a", slots=2)
        started = await world.task("started")
        world.later(1)  # the older task is handed out first
        unstarted = await world.task("unstarted")
        first = await world.fleet.dequeue.dequeue(await world.fleet.agents.get("a"), None, NOW)
        assert first is not None and first.task.task_id == started.task_id
        await world.fleet.tasks.report_status(
            started.task_id, "a", first.lease, TaskState.RUNNING, None, None
        )
        assert (
            await world.fleet.dequeue.dequeue(await world.fleet.agents.get("a"), None, NOW)
            is not None
        )
        gone = await world.fleet.agents.deregister(await world.fleet.agents.get("a"))
        assert gone.status is AgentStatus.DEREGISTERED
        # Work under way is lost (and retried by policy) ...
        task = await world.get(started.task_id)
        assert task.state is TaskState.AGENT_LOST and task.failure is not None
        assert task.failure.message == "agent deregistered"
        # ... a task it never started goes straight back, on the same attempt.
        back = await world.get(unstarted.task_id)
        assert (back.state, back.attempt) == (TaskState.CREATED, 0)
        assert (await world.types(unstarted.task_id))[-1] == "task.released"
        await world.fleet.agents.deregister(await world.fleet.agents.get("a"))
        assert await world.types("a") == ["agent.registered", "agent.deregistered"]
        # Registering again brings it back.
        await world.agent("a")
        assert (await world.fleet.agents.get("a")).status is AgentStatus.ONLINE

    run(scenario())
