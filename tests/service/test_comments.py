"""Progress comments on the issue behind a task: one per step, posted once, scrubbed."""

from datetime import timedelta

import pytest

from agent_fleet.domain.errors import ForgeError
from agent_fleet.domain.ids import AgentId, TaskId
from agent_fleet.domain.states import ReceiptStatus, TaskState
from agent_fleet.domain.values import Receipt
from agent_fleet.services.comments import CommentOn, marker
from agent_fleet.testing import InMemoryForge
from tests.service.world import REPO, World, issue, run

NOW = timedelta(0)


async def _an_issue_task_that_fails(world: World, error: str) -> str:
    """A task made from issue #12, picked up by an agent whose receipt says it failed."""
    made = await world.fleet.webhooks.handle(issue(), "d-1")
    task_id = str(made.task_id)
    await world.agent("w", caps=("code:python",))
    handout = await world.fleet.dequeue.dequeue(await world.fleet.agents.get("w"), None, NOW)
    assert handout is not None
    failed = Receipt(
        task_id=TaskId(task_id),
        agent_id=AgentId("w"),
        lease=handout.lease,
        status=ReceiptStatus.FAILED,
        error=error,
    )
    await world.fleet.tasks.complete(task_id, failed)
    return task_id


def _forge_with_issue() -> InMemoryForge:
    forge = InMemoryForge(writers={(REPO, "carol")})
    forge.open_issue(REPO, 12, ("agent:code:python",), by="carol")
    return forge


def test_each_step_is_told_once_on_the_issue_with_secrets_scrubbed() -> None:
    async def scenario() -> None:
        forge = _forge_with_issue()
        world = World(forge=forge)
        task_id = await _an_issue_task_that_fails(world, "tests fail; key sk-secret leaked")
        comments = world.fleet.comments
        assert comments is not None
        assert await comments.tick() == 2
        said = forge.comments[(REPO, 12)]
        assert [c.split()[1] for c in said] == ["Picked", "Attempt"]
        assert "(attempt 1)" in said[0] and f"task/{task_id}" in said[0]
        assert "It will be retried." in said[1] and "> tests fail; key [redacted] leaked" in said[1]
        assert "sk-secret" not in "".join(said)
        # Events 3 and 4: task.created and agent.registered came first.
        assert all(marker(n) in c for n, c in zip((3, 4), said, strict=True))
        assert await comments.tick() == 0  # the cursor moved past them
        world.later(30)
        assert await world.fleet.sweeper.run_due_retries() == 1
        assert await comments.tick() == 1
        assert forge.comments[(REPO, 12)][-1].startswith("🔁 Retrying automatically: attempt 2.")

    run(scenario())


def test_a_comment_posted_before_a_crash_is_not_posted_again() -> None:
    async def scenario() -> None:
        forge = _forge_with_issue()
        world = World(forge=forge)
        await _an_issue_task_that_fails(world, "boom")
        # Posted by a process that died before moving its cursor (or by another replica).
        forge.comments[(REPO, 12)].append(f"🤖 Picked up …\n\n{marker(3)}")
        comments = world.fleet.comments
        assert comments is not None
        assert await comments.tick() == 1
        assert sum(marker(3) in c for c in forge.comments[(REPO, 12)]) == 1

    run(scenario())


def test_a_forge_outage_stops_the_tick_and_the_next_one_resumes_where_it_stopped() -> None:
    async def scenario() -> None:
        forge = _forge_with_issue()
        world = World(forge=forge)
        await _an_issue_task_that_fails(world, "boom")
        comments = world.fleet.comments
        assert comments is not None
        forge.fail_next = 1
        with pytest.raises(ForgeError):
            await comments.tick()
        assert forge.comments[(REPO, 12)] == []
        assert await comments.tick() == 2

    run(scenario())


def test_only_the_chosen_steps_are_told_and_a_deleted_issue_is_skipped() -> None:
    async def scenario() -> None:
        forge = _forge_with_issue()
        world = World(forge=forge, comment_on=frozenset({CommentOn.FAILED}))
        await _an_issue_task_that_fails(world, "boom")
        plain = await world.task("not from an issue")
        await world.fleet.tasks.cancel(plain.task_id)
        comments = world.fleet.comments
        assert comments is not None
        assert await comments.tick() == 1
        assert [c.split()[1] for c in forge.comments[(REPO, 12)]] == ["Attempt"]
        del forge.comments[(REPO, 12)]  # the issue was deleted
        again = await world.fleet.webhooks.handle(issue("closed", state="closed"), "d-9")
        assert again.result == "cancelled"
        assert await comments.tick() == 0  # nothing to say about a cancel, nowhere to say it

    run(scenario())


def test_a_lost_agent_and_a_final_failure_are_told_as_such() -> None:
    async def scenario() -> None:
        forge = _forge_with_issue()
        world = World(forge=forge)
        made = await world.fleet.webhooks.handle(issue(), "d-1")
        task_id = str(made.task_id)
        await world.agent("w", caps=("code:python",))
        got = await world.fleet.dequeue.dequeue(await world.fleet.agents.get("w"), None, NOW)
        assert got is not None
        await world.fleet.tasks.report_status(
            task_id, "w", got.lease, TaskState.RUNNING, None, None
        )
        await world.fleet.agents.deregister(await world.fleet.agents.get("w"))
        await world.fleet.tasks.retry(task_id)
        comments = world.fleet.comments
        assert comments is not None
        await comments.tick()
        said = forge.comments[(REPO, 12)]
        assert "lost its agent (`agent_lost`)" in said[1]
        assert "Retrying by hand: attempt 2." in said[2]
        assert (await world.get(task_id)).state is TaskState.CREATED

    run(scenario())
