"""An orchestrator crash never costs a task an attempt (ssh_cli, in-memory store, manual
clock). A restart is a new `Dispatcher` on the same store: what the dead one claimed and
never launched, or left half-prepared, is lost with `cause: orchestrator_restart`,
retried at once and not counted; the agent's own failures still count."""

import asyncio
from datetime import timedelta

from agent_fleet.domain.events import TaskAgentLost, TaskFailed, TaskRetried
from agent_fleet.domain.ids import TaskId
from agent_fleet.domain.policies import RetryPolicy
from agent_fleet.domain.states import ExecutionMode, FailureReason, LossCause, TaskState
from agent_fleet.domain.task import Task
from agent_fleet.ports.hosts import HostRun, RunKey, RunOrder, RunPhase
from agent_fleet.services.context import Context, FleetOptions
from agent_fleet.services.dispatch import SSH_MODES, Dispatcher
from agent_fleet.services.runs import LAUNCH_GRACE, PREPARE_LIMIT_SECS
from agent_fleet.services.sweeps import Sweeper
from agent_fleet.services.tasks import CreateTask, TaskService, new_lease
from agent_fleet.store.signal import AsyncioTaskSignal
from agent_fleet.testing import InMemoryEventStore, ManualClock
from tests.unit.test_dispatcher import SLOTS, ScriptedHosts

RESTART = LossCause.ORCHESTRATOR_RESTART


class Orchestrator:
    """One orchestrator process over a store that outlives it."""

    def __init__(self, store: InMemoryEventStore, clock: ManualClock, exclusive: bool) -> None:
        options = FleetOptions(retry=RetryPolicy(base_delay=timedelta(seconds=30)))
        self.ctx = Context(store=store, clock=clock, signal=AsyncioTaskSignal(), options=options)
        self.tasks = TaskService(self.ctx)
        self.hosts = ScriptedHosts()
        self.dispatcher = Dispatcher(
            self.ctx, self.tasks, self.hosts, SLOTS, keep_failed_days=7, exclusive=exclusive
        )

    async def place(self) -> None:
        async with self.dispatcher.launching():
            await self.dispatcher.dispatch()


class World:
    def __init__(self, exclusive: bool = True) -> None:
        self.store = InMemoryEventStore()
        self.clock = ManualClock()
        self.exclusive = exclusive
        self.current = Orchestrator(self.store, self.clock, exclusive)

    async def new_task(self, max_retries: int) -> TaskId:
        await self.current.dispatcher.register_slots()
        cmd = CreateTask(
            title="t",
            prompt="p",
            required_capabilities=("code",),
            execution_mode=ExecutionMode.SSH_CLI,
            max_retries=max_retries,
        )
        return (await self.current.tasks.create(cmd)).task_id

    async def crash_mid_launch(self, task_id: TaskId, *, workspace_begun: bool) -> Task:
        """This process claims the task, then dies before its run starts; a new one starts."""
        agent = await self.store.get_agent(SLOTS[0].agent_id)
        assert agent is not None
        claimed = await self.store.claim_task(agent, SSH_MODES, new_lease(), self.clock.now())
        assert claimed is not None and claimed.task_id == task_id, claimed
        survivors = self.current.hosts.runs
        if workspace_begun:  # the run's directory exists; its process never started
            key = RunKey(SLOTS[0].host_id, task_id, claimed.attempt)
            survivors[key] = HostRun(key, RunPhase.PREPARING, None, 0)
        self.current = Orchestrator(self.store, self.clock, self.exclusive)
        self.current.hosts.runs = survivors  # the host keeps its directories
        await self.current.dispatcher.register_slots()
        return claimed

    async def task(self, task_id: TaskId) -> Task:
        return await self.current.tasks.get(task_id)

    async def history(self, task_id: TaskId) -> list[object]:
        return [r.event for r in await self.current.tasks.events(task_id)]


def run(scenario: object) -> None:
    asyncio.run(scenario)  # type: ignore[arg-type]


def test_crashes_mid_launch_cost_nothing_and_the_task_still_gets_its_one_attempt() -> None:
    async def scenario() -> None:
        world = World(exclusive=True)
        task_id = await world.new_task(max_retries=0)
        for n, begun in enumerate([False, True, True]):
            await world.crash_mid_launch(task_id, workspace_begun=begun)
            world.clock.advance(timedelta(seconds=1))
            assert await world.current.dispatcher.watch() == 1
            task = await world.task(task_id)
            # Retried at once (no backoff, whatever max_retries says), numbered anew.
            assert (task.state, task.attempt) == (TaskState.CREATED, n + 1)
            assert task.free_attempts == n + 1 and task.counted_attempts == 0
        await world.current.place()
        (order,) = world.current.hosts.launched
        assert order.key.attempt == 3
        world.current.hosts.runs[order.key] = HostRun(order.key, RunPhase.EXITED, 0, 0)
        world.clock.advance(timedelta(seconds=1))
        await world.current.dispatcher.watch()
        assert (await world.task(task_id)).state is TaskState.COMPLETED
        history = await world.history(task_id)
        lost = [e for e in history if isinstance(e, TaskAgentLost)]
        assert [e.cause for e in lost] == [RESTART] * 3
        assert [e.message for e in lost] == [
            "its launch was interrupted",
            "its workspace was never ready: its launch was interrupted",
            "its workspace was never ready: its launch was interrupted",
        ]
        assert all(e.free for e in history if isinstance(e, TaskRetried))
        # The half-made workspaces of the dead launches were removed, none stopped.
        assert len(world.current.hosts.removed) == 2 and world.current.hosts.stopped == []

    run(scenario())


def test_an_agents_own_failures_count_even_after_our_crash() -> None:
    async def scenario() -> None:
        world = World(exclusive=True)
        task_id = await world.new_task(max_retries=1)
        await world.crash_mid_launch(task_id, workspace_begun=False)
        world.clock.advance(timedelta(seconds=1))
        await world.current.dispatcher.watch()
        # Attempt 1 is the first that counts: its failure is retried (after the backoff) ...
        await world.current.place()
        first = world.current.hosts.launched[-1]
        world.current.hosts.runs[first.key] = HostRun(first.key, RunPhase.EXITED, 3, 0)
        world.clock.advance(timedelta(seconds=1))
        await world.current.dispatcher.watch()
        failed = await world.task(task_id)
        assert failed.state is TaskState.FAILED and failed.retry_at is not None
        assert failed.retry_at - world.clock.now() == timedelta(seconds=30)  # 30 s x 2^0
        await world.current.tasks.retry(task_id, actor="loop:retries")
        # ... attempt 2's is final: max_retries 1 means two attempts of its own.
        await world.current.place()
        second = world.current.hosts.launched[-1]
        world.current.hosts.runs[second.key] = HostRun(second.key, RunPhase.EXITED, 3, 0)
        world.clock.advance(timedelta(seconds=1))
        await world.current.dispatcher.watch()
        final = await world.task(task_id)
        assert (final.state, final.attempt, final.retry_at) == (TaskState.FAILED, 2, None)
        reasons = [e.reason for e in await world.history(task_id) if isinstance(e, TaskFailed)]
        assert reasons == [FailureReason.ERROR, FailureReason.ERROR]

    run(scenario())


def test_a_run_that_vanished_from_its_host_is_not_our_crash_and_counts() -> None:
    async def scenario() -> None:
        world = World(exclusive=True)
        task_id = await world.new_task(max_retries=0)
        await world.current.place()
        world.current.hosts.runs.clear()  # the host rebooted: the running CLI is gone
        world.clock.advance(timedelta(seconds=1))
        await world.current.dispatcher.watch()
        task = await world.task(task_id)
        assert task.state is TaskState.AGENT_LOST and task.retry_at is None
        (lost,) = [e for e in await world.history(task_id) if isinstance(e, TaskAgentLost)]
        assert lost.cause is None

    run(scenario())


def test_with_replicas_a_launch_is_given_time_before_it_counts_as_interrupted() -> None:
    async def scenario() -> None:
        world = World(exclusive=False)
        never_begun = await world.new_task(max_retries=0)
        await world.crash_mid_launch(never_begun, workspace_begun=False)
        world.clock.advance(timedelta(seconds=1))
        assert await world.current.dispatcher.watch() == 0  # another replica may launch it
        world.clock.advance(LAUNCH_GRACE)
        assert await world.current.dispatcher.watch() == 1
        task = await world.task(never_begun)
        assert (task.state, task.free_attempts) == (TaskState.CREATED, 1)

    run(scenario())


def test_with_replicas_a_workspace_being_prepared_is_lost_only_past_the_limit() -> None:
    async def scenario() -> None:
        world = World(exclusive=False)
        task_id = await world.new_task(max_retries=0)
        claimed = await world.crash_mid_launch(task_id, workspace_begun=True)
        key = RunKey(SLOTS[0].host_id, task_id, claimed.attempt)
        assert await world.current.dispatcher.watch() == 0  # a clone may take minutes
        stale = HostRun(key, RunPhase.PREPARING, None, PREPARE_LIMIT_SECS + 1)
        world.current.hosts.runs[key] = stale
        world.clock.advance(timedelta(seconds=1))
        assert await world.current.dispatcher.watch() == 1
        task = await world.task(task_id)
        assert (task.state, task.attempt, task.free_attempts) == (TaskState.CREATED, 1, 1)

    run(scenario())


class BrokenHosts(ScriptedHosts):
    """A launch that trips over a bug (not a crash of the process)."""

    async def launch(self, order: RunOrder) -> None:
        raise RuntimeError("a bug in the launcher")


def test_a_launch_that_breaks_fails_the_attempt_and_it_counts() -> None:
    async def scenario() -> None:
        world = World(exclusive=True)
        world.current.hosts = BrokenHosts()
        world.current.dispatcher = Dispatcher(
            world.current.ctx, world.current.tasks, world.current.hosts, SLOTS, 7, exclusive=True
        )
        task_id = await world.new_task(max_retries=0)
        await world.current.place()
        task = await world.task(task_id)
        assert task.state is TaskState.FAILED and task.retry_at is None  # not free, not held
        assert task.failure is not None and task.failure.reason is FailureReason.DISPATCH_ERROR
        assert "a bug in the launcher" in task.failure.message

    run(scenario())


def test_down_past_the_timeout_an_interrupted_launch_is_still_not_counted() -> None:
    async def scenario() -> None:
        world = World(exclusive=True)
        task_id = await world.new_task(max_retries=0)
        await world.crash_mid_launch(task_id, workspace_begun=True)
        world.clock.advance(timedelta(hours=2))  # down longer than the task's timeout
        sweeper = Sweeper(world.current.ctx, world.current.tasks)
        # The timeouts duty may run before the dispatcher's first look at the host ...
        assert await sweeper.expire_timeouts() == 0
        # ... which finds the launch our crash cut short: free, and placed again.
        assert await world.current.dispatcher.watch() == 1
        task = await world.task(task_id)
        assert (task.state, task.free_attempts, task.failure) == (TaskState.CREATED, 1, None)
        await world.current.place()
        started = await world.task(task_id)
        assert started.state is TaskState.RUNNING
        world.clock.advance(timedelta(hours=2))  # a run that overstays is still timed out
        assert await sweeper.expire_timeouts() == 1
        timed_out = await world.task(task_id)
        assert timed_out.failure is not None
        assert timed_out.failure.reason is FailureReason.TIMEOUT

    run(scenario())
