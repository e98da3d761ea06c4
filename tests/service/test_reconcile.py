"""Reconciliation: what lost webhooks would have done, done anyway from the forge's state."""

from agent_fleet.domain.states import FailureReason, TaskState
from agent_fleet.ports.queries import TaskQuery
from agent_fleet.testing import InMemoryForge
from tests.service.world import REPO, World, run, under_review


def test_labelled_issues_without_a_task_get_one_if_a_writer_labelled_them() -> None:
    async def scenario() -> None:
        forge = InMemoryForge(writers={(REPO, "carol")})
        forge.open_issue(REPO, 20, ("agent:code:rust", "priority:high"), by="carol")
        forge.open_issue(REPO, 21, ("agent:code:cobol",), by="mallory")  # may not write
        forge.open_issue(REPO, 22, ("bug",), by="carol")  # no agent label
        forge.open_issue("acme/other", 5, ("agent:docs",), by="carol")  # not a writer there
        world = World(forge=forge)
        reconciler = world.fleet.reconciler
        assert reconciler is not None
        assert await reconciler.tick() == 1
        (made,) = await world.store.list_tasks(TaskQuery())
        assert (made.source.repo, made.source.issue_number) == (REPO, 20)
        assert (made.required_capabilities, made.priority) == (("code:rust",), 10)
        assert made.source.url == f"https://forge.example/{REPO}/issues/20"
        # An issue that had a task, even one that ended, is left to its webhooks.
        await world.fleet.tasks.cancel(made.task_id)
        assert await reconciler.tick() == 0
        assert len(await world.store.list_tasks(TaskQuery())) == 1

    run(scenario())


def test_allowed_repos_are_the_only_ones_looked_at() -> None:
    async def scenario() -> None:
        forge = InMemoryForge(writers={(REPO, "carol"), ("acme/other", "carol")})
        forge.open_issue(REPO, 20, ("agent:code:rust",), by="carol")
        forge.open_issue("acme/other", 5, ("agent:docs",), by="carol")
        world = World(forge=forge, allowed_repos=["acme/other"])
        reconciler = world.fleet.reconciler
        assert reconciler is not None
        assert await reconciler.issues() == 1
        assert "repos" not in forge.calls and f"issues {REPO}" not in forge.calls

    run(scenario())


def test_pull_requests_under_review_are_read_again() -> None:
    async def scenario() -> None:
        forge = InMemoryForge(writers={(REPO, "carol")})
        world = World(forge=forge)
        task_id = await under_review(world)
        reconciler = world.fleet.reconciler
        assert reconciler is not None
        assert await reconciler.reviews() == 0  # still open: nothing to do
        del forge.pulls[(REPO, 13)]
        assert await reconciler.reviews() == 0  # gone from the forge: left as it is
        forge.pull(REPO, 13, f"task/{task_id}", merged=True, closed=True)
        assert await reconciler.reviews() == 1
        assert (await world.get(task_id)).state is TaskState.COMPLETED

        other = World(forge=InMemoryForge(writers={(REPO, "carol")}))
        closed = await under_review(other)
        assert other.forge is not None
        other.forge.pull(REPO, 13, f"task/{closed}", closed=True)
        assert other.fleet.reconciler is not None
        assert await other.fleet.reconciler.reviews() == 1
        task = await other.get(closed)
        assert task.failure is not None and task.failure.reason is FailureReason.PR_CLOSED

    run(scenario())
