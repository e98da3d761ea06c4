"""The background duties one tick at a time: timeouts, silent agents, due retries."""

from datetime import timedelta

from agent_fleet.domain.ids import AgentId
from agent_fleet.domain.states import AgentStatus, FailureReason, TaskState
from tests.service.world import World, run

_NO_WAIT = timedelta(0)


async def _held_by(world: World, agent_id: str, *, started: bool = True, **task: object) -> str:
    """A task the agent dequeued (and started)."""
    made = await world.task(**task)  # type: ignore[arg-type]
    handout = await world.fleet.dequeue.dequeue(
        await world.fleet.agents.get(agent_id), None, wait=_NO_WAIT
    )
    assert handout is not None and handout.task.task_id == made.task_id
    if started:
        await world.fleet.tasks.report_status(
            made.task_id, agent_id, handout.lease, TaskState.RUNNING, None, None
        )
    return made.task_id


def test_a_task_past_its_timeout_fails_and_is_retried_after_the_backoff() -> None:
    async def scenario() -> None:
        world = World()
        await world.agent("w", slots=2)
        slow = await _held_by(world, "w", timeout_secs=60)
        quick = await _held_by(world, "w", timeout_secs=600)
        world.later(59)
        assert await world.fleet.sweeper.expire_timeouts() == 0
        world.later(2)
        assert await world.fleet.sweeper.expire_timeouts() == 1
        failed = await world.get(slow)
        assert failed.state is TaskState.FAILED and failed.failure is not None
        assert failed.failure.reason is FailureReason.TIMEOUT
        assert failed.failure.message == "no result within 60s"
        assert failed.retry_at == world.clock.now() + timedelta(seconds=30)
        assert (await world.get(quick)).state is TaskState.RUNNING
        # The retry waits for its backoff, then opens the next attempt.
        assert await world.fleet.sweeper.run_due_retries() == 0
        world.later(30)
        assert await world.fleet.sweeper.run_due_retries() == 1
        retried = await world.get(slow)
        assert (retried.state, retried.attempt) == (TaskState.CREATED, 1)
        assert await world.fleet.sweeper.run_due_retries() == 0  # once

    run(scenario())


def test_a_timeout_with_no_retries_left_is_final() -> None:
    async def scenario() -> None:
        world = World()
        await world.agent("w")
        task_id = await _held_by(world, "w", started=False, timeout_secs=10, max_retries=0)
        world.later(11)
        assert await world.fleet.sweeper.expire_timeouts() == 1
        task = await world.get(task_id)
        assert task.state is TaskState.FAILED and task.retry_at is None
        world.later(3600)
        assert await world.fleet.sweeper.run_due_retries() == 0

    run(scenario())


def test_silent_agents_go_offline_and_lose_their_tasks() -> None:
    async def scenario() -> None:
        world = World()  # heartbeats every 10 s, three missed: 30 s
        await world.agent("silent")
        await world.agent("beating")
        task_id = await _held_by(world, "silent")
        world.later(29)
        await world.fleet.agents.heartbeat("beating", None)
        assert await world.fleet.sweeper.detect_lost_agents() == 0
        world.later(2)
        assert await world.fleet.sweeper.detect_lost_agents() == 1
        silent = await world.store.get_agent(AgentId("silent"))
        beating = await world.store.get_agent(AgentId("beating"))
        assert silent is not None and silent.status is AgentStatus.OFFLINE
        assert beating is not None and beating.status is AgentStatus.ONLINE
        lost = await world.get(task_id)
        assert lost.state is TaskState.AGENT_LOST and lost.failure is not None
        assert lost.failure.message == "agent silent stopped heartbeating"
        assert lost.retry_at is not None  # retried by policy, after the backoff
        assert await world.fleet.sweeper.detect_lost_agents() == 0  # once
        # It comes back: a heartbeat brings it online; it no longer holds the task.
        reply = await world.fleet.agents.heartbeat("silent", [task_id])
        assert reply.agent.status is AgentStatus.ONLINE and reply.cancel_tasks == [task_id]

    run(scenario())


def test_after_a_restart_agents_get_one_full_timeout_to_reach_us() -> None:
    async def scenario() -> None:
        world = World()
        await world.agent("w")
        task_id = await _held_by(world, "w")
        world.later(600)  # we were down ten minutes: nobody could beat
        world.restart()
        world.later(29)
        assert await world.fleet.sweeper.detect_lost_agents() == 0
        await world.fleet.agents.heartbeat("w", [task_id])  # it reached us in time
        world.later(2)
        assert await world.fleet.sweeper.detect_lost_agents() == 0
        assert (await world.get(task_id)).state is TaskState.RUNNING

    run(scenario())


def test_a_cancelled_task_is_not_retried_however_due() -> None:
    async def scenario() -> None:
        world = World()
        await world.agent("w")
        task_id = await _held_by(world, "w", timeout_secs=10)
        world.later(11)
        await world.fleet.sweeper.expire_timeouts()
        await world.fleet.tasks.cancel(task_id)
        world.later(3600)
        assert await world.fleet.sweeper.run_due_retries() == 0
        assert (await world.get(task_id)).state is TaskState.CANCELLED

    run(scenario())
