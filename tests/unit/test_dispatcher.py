"""The ssh_cli dispatcher's decisions, with the in-memory store and a scripted host.

The real hosts (local shell, sshd) are exercised in tests/integration and tests/e2e;
here a stand-in `HostRuns` lets each rule be shown alone: least loaded first, a host
that fails is backed off and its task retried, a run that vanished is agent_lost.
"""

import asyncio
from datetime import timedelta

from agent_fleet.domain.errors import HostUnreachable
from agent_fleet.domain.events import TaskAgentLost, TaskFailed
from agent_fleet.domain.policies import RetryPolicy
from agent_fleet.domain.states import ExecutionMode, FailureReason, TaskState
from agent_fleet.domain.task import Task
from agent_fleet.ports.hosts import HostRun, HostSlot, RunKey, RunOrder, RunPhase, RunResult
from agent_fleet.services.context import Context, FleetOptions
from agent_fleet.services.dispatch import SSH_MODES, Dispatcher
from agent_fleet.services.tasks import CreateTask, TaskService, new_lease
from agent_fleet.store.signal import AsyncioTaskSignal
from agent_fleet.testing import InMemoryEventStore, ManualClock


class ScriptedHosts:
    """Remembers launches; a host in `down` refuses every call, like a closed port."""

    def __init__(self) -> None:
        self.down: set[str] = set()
        self.launched: list[RunOrder] = []
        self.runs: dict[RunKey, HostRun] = {}
        self.stopped: list[RunKey] = []
        self.removed: list[RunKey] = []
        self.marked: list[RunKey] = []

    def _check(self, host_id: str) -> None:
        if host_id in self.down:
            raise HostUnreachable(host_id, "connection refused")

    async def launch(self, order: RunOrder) -> None:
        self._check(order.key.host_id)
        self.launched.append(order)
        self.runs[order.key] = HostRun(order.key, RunPhase.ALIVE, None, 0)

    async def survey(self, host_id: str) -> list[HostRun]:
        self._check(host_id)
        return [r for k, r in self.runs.items() if k.host_id == host_id]

    async def read_log(self, key: RunKey, offset: int, limit: int) -> bytes:
        return b""

    async def result(self, key: RunKey, agent_type: str, exit_code: int | None) -> RunResult:
        return RunResult(completed=exit_code == 0, summary="done")

    async def stop(self, key: RunKey) -> None:
        self.stopped.append(key)
        self.runs.pop(key, None)

    async def remove(self, key: RunKey) -> None:
        self.removed.append(key)
        self.runs.pop(key, None)

    async def purge(self, host_id: str, older_than_days: int, completed_after: timedelta) -> None:
        return None

    async def mark_completed(self, key: RunKey) -> None:
        self.marked.append(key)

    def shows_progress(self, agent_type: str, output: bytes) -> bool:
        return bool(output.strip())

    async def close(self) -> None:
        return None


SLOTS = [
    HostSlot(
        host_id="a",
        hostname="a.example",
        agent_type="codex",
        capabilities=("code",),
        max_concurrency=2,
    ),
    HostSlot(
        host_id="b",
        hostname="b.example",
        agent_type="codex",
        capabilities=("code",),
        max_concurrency=2,
    ),
]


def setup(
    exclusive: bool = False,
    hosts: ScriptedHosts | None = None,
    slots: list[HostSlot] = SLOTS,
) -> tuple[Dispatcher, TaskService, ScriptedHosts, ManualClock, InMemoryEventStore]:
    store = InMemoryEventStore()
    clock = ManualClock()
    options = FleetOptions(
        retry=RetryPolicy(base_delay=timedelta(0), max_delay=timedelta(0)),
        heartbeat_interval=timedelta(seconds=10),
        heartbeat_threshold=3,
    )
    ctx = Context(store=store, clock=clock, signal=AsyncioTaskSignal(), options=options)
    tasks = TaskService(ctx)
    hosts = hosts or ScriptedHosts()
    dispatcher = Dispatcher(ctx, tasks, hosts, slots, keep_failed_days=7, exclusive=exclusive)
    return dispatcher, tasks, hosts, clock, store


async def new(tasks: TaskService, mode: ExecutionMode = ExecutionMode.SSH_CLI) -> str:
    task = await tasks.create(
        CreateTask(title="t", prompt="p", required_capabilities=("code",), execution_mode=mode)
    )
    return task.task_id


async def place_one(dispatcher: Dispatcher, tasks: TaskService) -> str:
    """Slots registered, one ssh_cli task created, placed and launched."""
    await dispatcher.register_slots()
    task_id = await new(tasks)
    async with dispatcher.launching():
        await dispatcher.dispatch()
    return task_id


def test_tasks_go_to_the_least_loaded_slot_and_start() -> None:
    async def scenario() -> None:
        dispatcher, tasks, hosts, _, _ = setup()
        await dispatcher.register_slots()
        ids = [await new(tasks) for _ in range(3)]
        async with dispatcher.launching():
            assert await dispatcher.dispatch() == 3
        placed = sorted(o.agent_id for o in hosts.launched)
        assert placed == ["a/codex", "a/codex", "b/codex"] or placed == [
            "a/codex",
            "b/codex",
            "b/codex",
        ]
        assert {o.key.host_id for o in hosts.launched[:2]} == {"a", "b"}  # spread first
        for task_id in ids:
            assert (await tasks.get(task_id)).state is TaskState.RUNNING

    asyncio.run(scenario())


def test_a_refusing_host_fails_the_launch_with_dispatch_error_and_is_backed_off() -> None:
    async def scenario() -> None:
        dispatcher, tasks, hosts, clock, _ = setup()
        await dispatcher.register_slots()
        hosts.down.add("a")
        task_id = await new(tasks)
        async with dispatcher.launching():
            await dispatcher.dispatch()  # "a" is first (a tie broken by id) and refuses
        task = await tasks.get(task_id)
        assert task.state is TaskState.CREATED and task.attempt == 1  # retried at once
        failed = [e.event for e in await tasks.events(task_id) if isinstance(e.event, TaskFailed)]
        assert [f.reason for f in failed] == [FailureReason.DISPATCH_ERROR]
        # While "a" is backed off, its slots are skipped: the retry goes to "b".
        async with dispatcher.launching():
            await dispatcher.dispatch()
        assert [o.agent_id for o in hosts.launched] == ["b/codex"]
        # After the backoff, "a" is tried again (and is fine now).
        hosts.down.clear()
        clock.advance(timedelta(seconds=5))
        other = await new(tasks)
        async with dispatcher.launching():
            await dispatcher.dispatch()
        assert hosts.launched[-1].key.task_id == other
        assert hosts.launched[-1].agent_id == "a/codex"

    asyncio.run(scenario())


def test_a_run_gone_from_its_host_is_agent_lost_and_retried() -> None:
    async def scenario() -> None:
        dispatcher, tasks, hosts, clock, _ = setup()
        task_id = await place_one(dispatcher, tasks)
        hosts.runs.clear()  # the host rebooted and took the run with it
        clock.advance(timedelta(seconds=1))
        assert await dispatcher.watch() == 1
        task = await tasks.get(task_id)
        assert task.state is TaskState.CREATED and task.attempt == 1
        assert any(isinstance(e.event, TaskAgentLost) for e in await tasks.events(task_id))

    asyncio.run(scenario())


def test_a_host_down_past_the_heartbeat_timeout_loses_its_tasks() -> None:
    async def scenario() -> None:
        dispatcher, tasks, hosts, clock, _ = setup()
        task_id = await place_one(dispatcher, tasks)
        host = hosts.launched[0].key.host_id
        hosts.down.add(host)
        await dispatcher.watch()  # marked down, not lost yet
        assert (await tasks.get(task_id)).state is TaskState.RUNNING
        clock.advance(timedelta(seconds=31))
        await dispatcher.watch()
        assert (await tasks.get(task_id)).state is TaskState.CREATED

    asyncio.run(scenario())


def test_a_run_whose_task_was_cancelled_is_stopped() -> None:
    async def scenario() -> None:
        dispatcher, tasks, hosts, _, _ = setup()
        task_id = await place_one(dispatcher, tasks)
        await tasks.cancel(task_id)
        await dispatcher.watch()
        assert [k.task_id for k in hosts.stopped] == [task_id]

    asyncio.run(scenario())


def test_pull_only_tasks_are_never_placed_on_hosts() -> None:
    async def scenario() -> None:
        dispatcher, tasks, hosts, _, _ = setup()
        await dispatcher.register_slots()
        await new(tasks, ExecutionMode.HTTP_PULL)
        async with dispatcher.launching():
            assert await dispatcher.dispatch() == 0
        assert hosts.launched == []

    asyncio.run(scenario())


def test_after_a_restart_a_claimed_but_never_launched_task_is_lost_at_once_on_sqlite() -> None:
    async def scenario() -> tuple[TaskState, TaskState]:
        results = []
        for exclusive in (True, False):
            dispatcher, tasks, _, clock, store = setup(exclusive=exclusive)
            await dispatcher.register_slots()
            task_id = await new(tasks)
            agent = await store.get_agent(SLOTS[0].agent_id)
            assert agent is not None
            # The previous process claimed it and died before launching.
            claimed = await store.claim_task(agent, SSH_MODES, new_lease(), ManualClock().now())
            clock.advance(timedelta(seconds=1))
            assert claimed is not None and claimed.task_id == task_id
            await dispatcher.watch()
            results.append((await tasks.get(task_id)).state)
        return results[0], results[1]

    alone, with_replicas = asyncio.run(scenario())
    assert alone is TaskState.CREATED  # lost and retried at once: nobody else launches
    assert with_replicas is TaskState.ASSIGNED  # another replica may be launching it


def test_a_workspace_left_half_prepared_by_a_crash_is_removed_not_stopped_forever() -> None:
    async def scenario() -> tuple[list[RunKey], list[RunKey], Task]:
        dispatcher, tasks, hosts, clock, store = setup(exclusive=True)
        await dispatcher.register_slots()
        task_id = await new(tasks)
        agent = await store.get_agent(SLOTS[0].agent_id)
        assert agent is not None
        claimed = await store.claim_task(agent, SSH_MODES, new_lease(), clock.now())
        assert claimed is not None
        # The previous process died while cloning: a directory, no process.
        key = RunKey("a", claimed.task_id, claimed.attempt)
        hosts.runs[key] = HostRun(key, RunPhase.PREPARING, None, 3)
        clock.advance(timedelta(seconds=1))
        await dispatcher.watch()  # the held attempt is lost (and retried) ...
        await dispatcher.watch()  # ... and its stale directory removed, once
        await dispatcher.watch()
        return hosts.stopped, hosts.removed, await tasks.get(task_id)

    stopped, removed, task = asyncio.run(scenario())
    assert stopped == [] and len(removed) == 1
    assert task.state is TaskState.CREATED and task.attempt == 1  # retried, to be placed
