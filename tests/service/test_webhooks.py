"""Forge events → task commands (the webhook use case, after the signature and parsing,
which tests/unit/test_forgejo_webhooks.py covers): labels make, re-route and cancel
tasks; pull requests move them; reviews send them back."""

from datetime import timedelta

from agent_fleet.domain.states import FailureReason, PrState, TaskState
from agent_fleet.services.webhooks import read_labels
from agent_fleet.testing import InMemoryForge
from tests.service.world import REPO, World, issue, pull, run, under_review

NOW = timedelta(0)


def world_with_writer() -> World:
    return World(forge=InMemoryForge(writers={(REPO, "carol")}))


def test_labels_read_as_capabilities_and_priority() -> None:
    wanted = read_labels((" agent:code:rust ", "agent:", "priority:low", "agent:code:rust", "bug"))
    assert wanted.capabilities == ("code:rust",) and wanted.priority == -10
    assert not read_labels(("bug", "priority:high")).wants_agent


def test_an_issue_becomes_one_task_then_labels_reroute_it_until_it_starts() -> None:
    async def scenario() -> None:
        world = world_with_writer()
        hooks = world.fleet.webhooks
        made = await hooks.handle(issue(), "d-1")
        assert made.result == "created" and made.task_id is not None
        task = await world.get(made.task_id)
        assert task.required_capabilities == ("code:python",)
        assert task.source.kind == "forgejo" and task.source.issue_number == 12
        assert "```text\nExport is empty\n\nsteps to reproduce\n```" in task.prompt
        # The same labels again change nothing; new ones re-route it.
        assert (await hooks.handle(issue(), "d-2")).result == "unchanged"
        moved = await hooks.handle(issue(labels=("agent:docs", "priority:high")), "d-3")
        assert (moved.result, moved.task_id) == ("rerouted", made.task_id)
        task = await world.get(made.task_id)
        assert (task.required_capabilities, task.priority) == (("docs",), 10)
        # Once an agent started it, labels no longer move it.
        await world.agent("w", caps=("docs",))
        handout = await world.fleet.dequeue.dequeue(await world.fleet.agents.get("w"), None, NOW)
        assert handout is not None
        await world.fleet.tasks.report_status(
            made.task_id, "w", handout.lease, TaskState.RUNNING, None, None
        )
        late = await hooks.handle(issue(labels=("agent:rust",)), "d-4")
        assert late.result == "unchanged: the task has started"

    run(scenario())


def test_closing_the_issue_or_clearing_its_labels_cancels_its_task() -> None:
    async def scenario() -> None:
        world = world_with_writer()
        hooks = world.fleet.webhooks
        first = await hooks.handle(issue(), "d-1")
        closed = await hooks.handle(issue("closed", state="closed"), "d-2")
        assert (closed.result, closed.task_id) == ("cancelled", first.task_id)
        assert (await world.get(str(first.task_id))).state is TaskState.CANCELLED
        # A cancelled task is not the issue's live task: labelling again makes a new one.
        second = await hooks.handle(issue("reopened"), "d-3")
        assert second.result == "created" and second.task_id != first.task_id
        cleared = await hooks.handle(issue("label_cleared", labels=()), "d-4")
        assert (cleared.result, cleared.task_id) == ("cancelled", second.task_id)
        nothing = await hooks.handle(issue(labels=("bug",)), "d-5")
        assert nothing.result == "ignored: no agent label and no task"

    run(scenario())


def test_only_writers_and_allowed_repos_set_agents_to_work() -> None:
    async def scenario() -> None:
        world = World(forge=InMemoryForge(writers={(REPO, "carol")}), allowed_repos=[REPO])
        hooks = world.fleet.webhooks
        stranger = await hooks.handle(issue(sender="mallory"), "d-1")
        assert stranger.result == "ignored: mallory has no write access"
        elsewhere = await hooks.handle(issue(repo="evil/fork"), "d-2")
        assert elsewhere.result == "ignored: repository not in allowed_repos"
        on_a_pull = await hooks.handle(issue(is_pull=True), "d-3")
        assert on_a_pull.result == "ignored: a pull request's issue event"
        assert await world.store.count_tasks_by_state() == {}
        # Permissions are cached a minute: one question per person, then asked again.
        assert world.forge is not None
        await hooks.handle(issue(sender="mallory"), "d-4")
        assert world.forge.calls.count(f"can_write {REPO} mallory") == 1
        world.later(61)
        await hooks.handle(issue(sender="mallory"), "d-5")
        assert world.forge.calls.count(f"can_write {REPO} mallory") == 2

    run(scenario())


def test_a_merged_pull_request_completes_its_task_and_a_closed_one_fails_it() -> None:
    async def scenario() -> None:
        world = world_with_writer()
        hooks = world.fleet.webhooks
        merged = await under_review(world)
        done = await hooks.handle(pull(merged, "closed", state="closed", merged=True), "d-2")
        assert (done.result, done.task_id) == ("pull request merged", merged)
        assert (await world.get(merged)).state is TaskState.COMPLETED

        other = World(forge=InMemoryForge(writers={(REPO, "carol")}))
        closed = await under_review(other)
        shut = await other.fleet.webhooks.handle(pull(closed, "closed", state="closed"), "d-2")
        assert shut.result == "pull request closed"
        task = await other.get(closed)
        assert task.state is TaskState.FAILED and task.failure is not None
        assert task.failure.reason is FailureReason.PR_CLOSED and task.retry_at is None

    run(scenario())


def test_pull_requests_that_are_not_a_tasks_are_ignored() -> None:
    async def scenario() -> None:
        world = world_with_writer()
        hooks = world.fleet.webhooks
        assert (await hooks.handle(pull("x", branch="feature/x"), "d")).result == (
            "ignored: not a task branch"
        )
        assert (await hooks.handle(pull("no-such-task"), "d")).result == "ignored: no such task"
        # A PR opened before the receipt is remembered on the task (and reviewed later).
        made = await hooks.handle(issue(), "d-1")
        opened = await hooks.handle(pull(str(made.task_id)), "d-2")
        assert opened.result == "pull request open"
        task = await world.get(str(made.task_id))
        assert task.pr is not None and task.pr.state is PrState.OPEN
        assert task.state is TaskState.CREATED

    run(scenario())


def test_a_review_requesting_changes_sends_the_task_back_until_rounds_run_out() -> None:
    async def scenario() -> None:
        world = world_with_writer()  # three review rounds
        hooks = world.fleet.webhooks
        task_id = await under_review(world)
        stranger = await hooks.handle(
            pull(task_id, "reviewed", changes_requested="do X", sender="mallory"), "r-0"
        )
        assert stranger.result == "ignored: mallory has no write access"
        back = await hooks.handle(pull(task_id, "reviewed", changes_requested="rename it"), "r-1")
        assert back.result == "sent back for changes"
        task = await world.get(task_id)
        assert (task.state, task.attempt, task.review_rounds) == (TaskState.CREATED, 1, 1)
        assert "rename it" in task.prompt and task.pr is not None  # same PR, new prompt
        # Not under review any more: a second review changes nothing.
        again = await hooks.handle(pull(task_id, "reviewed", changes_requested="more"), "r-2")
        assert again.result == "unchanged: not under review, or review rounds or budget used up"
        missing = await hooks.handle(pull("gone", "reviewed", changes_requested="x"), "r-3")
        assert missing.result == "ignored: no such task"

    run(scenario())
