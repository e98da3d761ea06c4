"""Stall detection: a run with no progress for its idle timeout is stopped and fails
`stalled` — a local process (pull runner) and a detached run (ssh_cli dispatcher)."""

import asyncio
import dataclasses
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from agent_fleet.domain.events import TaskFailed
from agent_fleet.domain.states import FailureReason, ReceiptStatus
from agent_fleet.domain.task import accept_receipt
from agent_fleet.execution.process import AgentProcess
from agent_fleet.execution.stall import IdleWatch
from agent_fleet.ports.hosts import HostRun, RunKey, RunPhase
from agent_fleet.services.stalls import ProgressClock
from agent_fleet.testing import EPOCH
from tests.unit.test_dispatcher import SLOTS, ScriptedHosts, new, setup
from tests.unit.test_task_decisions import POLICY, T0, held, receipt

SILENT = [sys.executable, "-c", "import time; print('started', flush=True); time.sleep(120)"]
CHATTY = [
    sys.executable,
    "-c",
    "import time\nfor i in range(12): print(i, flush=True); time.sleep(0.25)",
]


async def run_watched(argv: list[str], limit: timedelta, tmp_path: Path) -> tuple[bool, int]:
    process = await AgentProcess.start(argv, tmp_path, {"PATH": "/usr/bin:/bin"}, b"")
    watch = IdleWatch(limit)

    async def on_output(piece: bytes) -> None:
        watch.progressed()

    async with asyncio.TaskGroup() as group:
        guard = group.create_task(watch.guard(process))
        exit = await process.wait(on_output)
        guard.cancel()
    return watch.stalled, exit.code


def test_a_silent_process_is_stopped_as_stalled(tmp_path: Path) -> None:
    began = time.monotonic()
    stalled, code = asyncio.run(run_watched(SILENT, timedelta(seconds=1), tmp_path))
    assert stalled and code < 0  # killed by a signal, not ended by itself
    assert time.monotonic() - began < 60  # not the two minutes it meant to sleep


def test_a_process_that_keeps_printing_is_left_alone(tmp_path: Path) -> None:
    # Quiet for 0.25 s at a time, never for the limit: it ends by itself.
    stalled, code = asyncio.run(run_watched(CHATTY, timedelta(seconds=2), tmp_path))
    assert (stalled, code) == (False, 0)


def test_no_limit_never_stops_anything(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import time; time.sleep(1.5)"]
    assert asyncio.run(run_watched(argv, None, tmp_path)) == (False, 0)  # type: ignore[arg-type]


def test_progress_clock_starts_at_first_sight_and_resets_on_progress() -> None:
    clock: ProgressClock[str] = ProgressClock()
    limit = timedelta(seconds=60)
    clock.saw("run", EPOCH, progressed=False)  # first sight: the clock starts
    assert not clock.is_stalled("run", EPOCH + timedelta(seconds=59), limit)
    clock.saw("run", EPOCH + timedelta(seconds=59), progressed=False)  # a retry notice
    assert clock.is_stalled("run", EPOCH + timedelta(seconds=60), limit)
    clock.saw("run", EPOCH + timedelta(seconds=60), progressed=True)
    assert not clock.is_stalled("run", EPOCH + timedelta(seconds=100), limit)
    assert not clock.is_stalled("run", EPOCH + timedelta(days=1), None)


class LoggingHosts(ScriptedHosts):
    """Each run's log grows by whatever the test appends; "notice" lines are no progress."""

    def __init__(self) -> None:
        super().__init__()
        self.logs: dict[RunKey, bytes] = {}

    async def read_log(self, key: RunKey, offset: int, limit: int) -> bytes:
        return self.logs.get(key, b"")[offset : offset + limit]

    def shows_progress(self, agent_type: str, output: bytes) -> bool:
        return any(line and b"notice" not in line for line in output.splitlines())


IDLE_5_MINUTES = [dataclasses.replace(s, idle_timeout=timedelta(minutes=5)) for s in SLOTS]


def test_the_dispatcher_stops_a_stalled_run_and_fails_it_stalled() -> None:
    async def scenario() -> None:
        hosts = LoggingHosts()  # the dispatcher watches logs that grow
        dispatcher, tasks, _, clock, store = setup(hosts=hosts, slots=IDLE_5_MINUTES)
        await dispatcher.register_slots()
        task_id = await new(tasks)
        async with dispatcher.launching():
            await dispatcher.dispatch()
        (order,) = hosts.launched
        key = order.key
        clock.advance(timedelta(minutes=2))  # past the claim's grace: surveys count now
        hosts.logs[key] = b'{"type":"thread.started"}\n'
        await dispatcher.watch()
        for _ in range(3):  # retry notices every minute and a half: not progress
            clock.advance(timedelta(seconds=90))
            hosts.logs[key] += b"Reconnecting... notice\n"
            await dispatcher.watch()
        assert hosts.stopped == []  # 4 min 30 s since the last progress
        clock.advance(timedelta(seconds=31))
        await dispatcher.watch()
        assert hosts.stopped == [key]
        events = [r.event for r in await store.stream_events(task_id)]
        failed = [e for e in events if isinstance(e, TaskFailed)]
        assert len(failed) == 1 and failed[0].reason is FailureReason.STALLED
        assert "no progress for 301 s" in failed[0].message
        assert failed[0].retry_at is not None  # retried like any failure

    asyncio.run(scenario())


def test_a_run_that_keeps_progressing_is_not_stopped() -> None:
    async def scenario() -> None:
        hosts = LoggingHosts()
        dispatcher, tasks, _, clock, _ = setup(hosts=hosts, slots=IDLE_5_MINUTES)
        await dispatcher.register_slots()
        await new(tasks)
        async with dispatcher.launching():
            await dispatcher.dispatch()
        key = hosts.launched[0].key
        hosts.runs[key] = HostRun(key, RunPhase.ALIVE, None, 0)
        for step in range(10):
            clock.advance(timedelta(minutes=4))
            hosts.logs[key] = hosts.logs.get(key, b"") + f"step {step}\n".encode()
            await dispatcher.watch()
        assert hosts.stopped == []

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("reason", "status", "expected"),
    [
        (FailureReason.STALLED, ReceiptStatus.FAILED, FailureReason.STALLED),
        (None, ReceiptStatus.FAILED, FailureReason.ERROR),
        # An agent cannot name a reason that is the server's or a person's to give.
        (FailureReason.PR_CLOSED, ReceiptStatus.FAILED, FailureReason.ERROR),
        (FailureReason.STALLED, ReceiptStatus.PARTIAL, FailureReason.PARTIAL),
    ],
)
def test_a_receipt_may_say_the_run_stalled(
    reason: FailureReason | None, status: ReceiptStatus, expected: FailureReason
) -> None:
    failed = dataclasses.replace(receipt(status), reason=reason, error="no progress")
    (event,) = accept_receipt(held(), failed, T0, "agent", POLICY)
    assert isinstance(event, TaskFailed) and event.reason is expected
    assert event.retry_at is not None  # retried like any failure
