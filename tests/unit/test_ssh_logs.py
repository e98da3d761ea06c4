"""ssh_cli log shipping: offsets in the run's file bytes, the lease redacted in what is
stored, every chunk kept (issue 14, finding 6), with the in-memory store and a host
whose log file grows between passes. The real thing: tests/e2e/test_ssh_cli.py."""

import asyncio
from datetime import timedelta

from agent_fleet.domain.ids import TaskId
from agent_fleet.domain.policies import RetryPolicy
from agent_fleet.domain.states import ExecutionMode, TaskState
from agent_fleet.ports.hosts import HostRun, HostSlot, RunKey, RunOrder, RunPhase, RunResult
from agent_fleet.services.context import Context, FleetOptions
from agent_fleet.services.dispatch import Dispatcher
from agent_fleet.services.tasks import CreateTask, TaskService
from agent_fleet.store.signal import AsyncioTaskSignal
from agent_fleet.testing import InMemoryEventStore, ManualClock

SLOT = HostSlot(host_id="h", hostname="h", agent_type="x", capabilities=(), max_concurrency=1)


class GrowingLog:
    """One host whose run writes its log in the steps the test chooses."""

    def __init__(self) -> None:
        self.files: dict[RunKey, bytearray] = {}
        self.orders: list[RunOrder] = []
        self.phase = RunPhase.ALIVE

    async def launch(self, order: RunOrder) -> None:
        self.orders.append(order)
        self.files[order.key] = bytearray()

    async def survey(self, host_id: str) -> list[HostRun]:
        return [HostRun(k, self.phase, 0 if self.phase is RunPhase.EXITED else None, 0)
                for k in self.files]  # fmt: skip

    async def read_log(self, key: RunKey, offset: int, limit: int) -> bytes:
        return bytes(self.files[key][offset : offset + limit])

    async def result(self, key: RunKey, agent_type: str, exit_code: int | None) -> RunResult:
        return RunResult(completed=True, summary="done")

    async def stop(self, key: RunKey) -> None: ...
    async def remove(self, key: RunKey) -> None: ...
    async def purge(
        self, host_id: str, older_than_days: int, completed_after: timedelta
    ) -> None: ...
    async def mark_completed(self, key: RunKey) -> None: ...
    async def close(self) -> None: ...

    def shows_progress(self, agent_type: str, output: bytes) -> bool:
        return bool(output)


def test_a_run_printing_its_lease_split_across_passes_keeps_every_line() -> None:
    async def scenario() -> bytes:
        store, clock = InMemoryEventStore(), ManualClock()
        options = FleetOptions(retry=RetryPolicy(base_delay=timedelta(0)))
        ctx = Context(store=store, clock=clock, signal=AsyncioTaskSignal(), options=options)
        tasks, host = TaskService(ctx), GrowingLog()
        dispatcher = Dispatcher(ctx, tasks, host, [SLOT], keep_failed_days=1, exclusive=True)
        await dispatcher.register_slots()
        task = await tasks.create(
            CreateTask(title="t", prompt="p", required_capabilities=(),
                       execution_mode=ExecutionMode.SSH_CLI)
        )  # fmt: skip
        async with dispatcher.launching():
            assert await dispatcher.dispatch() == 1
        order = host.orders[0]
        lease = order.lease.encode()
        log = host.files[order.key]
        steps = [
            b"start\nlease=" + lease[:10],  # the lease is cut in two by a pass
            lease[10:] + b"\nline 1\n",
            b"line 2\nline 3\n",
            b"line 4\n",
            b"line 5\n",
        ]
        for step in steps:
            log += step
            clock.advance(timedelta(seconds=1))
            await dispatcher.watch()
        host.phase = RunPhase.EXITED
        await dispatcher.watch()
        assert (await tasks.get(task.task_id)).state is TaskState.COMPLETED
        data, head = await store.read_log(TaskId(task.task_id), 0, 0, 10_000)
        assert head.length == len(log)  # every byte of the file acknowledged
        return data

    data = asyncio.run(scenario())
    assert data == b"start\nlease=[redacted]\nline 1\nline 2\nline 3\nline 4\nline 5\n"
