"""Task use cases: operator actions, what agents report, receipts (fenced and idempotent),
and the task's log."""

from datetime import timedelta

import pytest

from agent_fleet.domain.errors import (
    AgentNotFound,
    AgentUnavailable,
    InvalidInput,
    InvalidTransition,
    NotTaskHolder,
    StaleLease,
    TaskNotFound,
)
from agent_fleet.domain.ids import AgentId, Lease, TaskId
from agent_fleet.domain.states import FailureReason, ReceiptStatus, TaskState
from agent_fleet.domain.values import Artifact, Receipt, Source
from agent_fleet.services.tasks import CreateTask
from agent_fleet.testing import InMemoryForge
from tests.service.world import REPO, World, run

NOW = timedelta(0)


def _receipt(task_id: str, lease: str | None, **fields: object) -> Receipt:
    return Receipt(
        task_id=TaskId(task_id),
        agent_id=AgentId("w"),
        lease=Lease(lease) if lease else None,
        status=fields.pop("status", ReceiptStatus.COMPLETED),  # type: ignore[arg-type]
        summary="done",
        **fields,  # type: ignore[arg-type]
    )


def test_create_fills_in_the_defaults_and_refuses_unknown_ids() -> None:
    async def scenario() -> None:
        world = World()
        made = await world.task("t", caps=("a", "b", "a"))
        assert made.required_capabilities == ("a", "b")
        assert (made.max_retries, made.timeout_secs) == (2, 300)
        with pytest.raises(TaskNotFound):
            await world.fleet.tasks.get("nope")
        with pytest.raises(TaskNotFound):
            await world.fleet.tasks.events("nope")

    run(scenario())


def test_an_operator_assigns_only_to_an_agent_that_is_online() -> None:
    async def scenario() -> None:
        world = World()
        made = await world.task()
        with pytest.raises(AgentNotFound):
            await world.fleet.tasks.assign(made.task_id, "nobody")
        await world.agent("w")
        world.later(31)
        await world.fleet.sweeper.detect_lost_agents()
        with pytest.raises(AgentUnavailable):
            await world.fleet.tasks.assign(made.task_id, "w")
        await world.fleet.agents.heartbeat("w", None)
        assigned = await world.fleet.tasks.assign(made.task_id, "w")
        assert (assigned.state, assigned.agent_id) == (TaskState.ASSIGNED, "w")
        with pytest.raises(InvalidTransition):
            await world.fleet.tasks.assign(made.task_id, "w")

    run(scenario())


def test_status_reports_start_fail_or_tell_the_agent_to_stop() -> None:
    async def scenario() -> None:
        world = World()
        await world.agent("w", slots=2)
        first = await world.task("first")
        world.later(1)  # older first
        second = await world.task("second")
        got = await world.fleet.dequeue.dequeue(await world.fleet.agents.get("w"), None, NOW)
        assert got is not None and got.task.task_id == first.task_id
        running, stop = await world.fleet.tasks.report_status(
            first.task_id, "w", got.lease, TaskState.RUNNING, "half way", 0.5
        )
        assert (running.state, running.progress, stop) == (TaskState.RUNNING, 0.5, False)
        with pytest.raises(NotTaskHolder):
            await world.fleet.tasks.report_status(
                first.task_id, "other", None, TaskState.RUNNING, None, None
            )
        failed, stop = await world.fleet.tasks.report_status(
            first.task_id, "w", got.lease, TaskState.FAILED, "out of memory", None
        )
        assert failed.state is TaskState.FAILED and stop is True
        assert failed.failure is not None and failed.failure.message == "out of memory"
        # A cancelled task: its holder is told to stop, and nothing changes.
        again = await world.fleet.dequeue.dequeue(await world.fleet.agents.get("w"), None, NOW)
        assert again is not None and again.task.task_id == second.task_id
        await world.fleet.tasks.cancel(second.task_id, message="not needed")
        over, stop = await world.fleet.tasks.report_status(
            second.task_id, "w", again.lease, TaskState.RUNNING, None, None
        )
        assert (over.state, stop) == (TaskState.CANCELLED, True)

    run(scenario())


def test_a_receipt_is_fenced_idempotent_and_checked_with_the_forge() -> None:
    async def scenario() -> None:
        world = World(forge=InMemoryForge())
        await world.agent("w")
        source = Source(kind="forgejo", repo=REPO, issue_number=12)
        made = await world.fleet.tasks.create(
            CreateTask(title="t", prompt="p", required_capabilities=(), source=source)
        )
        got = await world.fleet.dequeue.dequeue(await world.fleet.agents.get("w"), None, NOW)
        assert got is not None
        with pytest.raises(InvalidInput):
            await world.fleet.tasks.complete("other", _receipt(made.task_id, got.lease))
        with pytest.raises(StaleLease):
            await world.fleet.tasks.complete(made.task_id, _receipt(made.task_id, "old-lease"))
        # It names a PR the forge does not have: receipt_invalid, retried after the backoff.
        pr = Artifact(type="pr", url=f"https://forge.example/{REPO}/pulls/99")
        invalid = await world.fleet.tasks.complete(
            made.task_id, _receipt(made.task_id, got.lease, artifacts=(pr,))
        )
        assert invalid.state is TaskState.FAILED and invalid.failure is not None
        assert invalid.failure.reason is FailureReason.RECEIPT_INVALID
        # The same receipt delivered again (its reply was lost) is answered, not applied.
        again = await world.fleet.tasks.complete(
            made.task_id, _receipt(made.task_id, got.lease, artifacts=(pr,))
        )
        assert again.version == invalid.version
        assert (await world.types(made.task_id)).count("task.failed") == 1

    run(scenario())


def test_log_chunks_belong_to_the_holders_current_attempt() -> None:
    async def scenario() -> None:
        world = World()
        await world.agent("w")
        made = await world.task(max_retries=1)
        got = await world.fleet.dequeue.dequeue(await world.fleet.agents.get("w"), None, NOW)
        assert got is not None
        logs = world.fleet.task_logs
        assert await logs.append(made.task_id, "w", got.lease, 0, "line one\n") == 9
        assert await logs.append(made.task_id, "w", got.lease, 0, "line one\n") == 9  # resent
        with pytest.raises(NotTaskHolder):
            await logs.append(made.task_id, "intruder", None, 9, "forged\n")
        await world.fleet.tasks.report_status(
            made.task_id, "w", got.lease, TaskState.RUNNING, None, None
        )
        await world.fleet.agents.deregister(await world.fleet.agents.get("w"))
        await world.fleet.tasks.retry(made.task_id)
        with pytest.raises(StaleLease):  # the lost attempt's process writes no more
            await logs.append(made.task_id, "w", got.lease, 9, "late\n")
        first = await logs.read(made.task_id, 0, 0)
        current = await logs.read(made.task_id, None, 0)
        assert (first.data, first.next_offset) == (b"line one\n", 9)
        assert (current.attempt, current.data) == (1, b"")

    run(scenario())
