"""The task's one pull request: opened by the server for the pushed branch, the only PR a
webhook may move the task with, and the receipt checks, each written as the attack or the
failure it prevents. Real services on a real SQLite store; the forge is an in-memory one."""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent_fleet.domain.ids import AgentId, TaskId
from agent_fleet.domain.policies import RetryPolicy
from agent_fleet.domain.states import ReceiptStatus
from agent_fleet.domain.task import Task
from agent_fleet.domain.values import Artifact, Receipt, Source
from agent_fleet.ports.forge import ForgePull, IssueEvent, PullRequestEvent
from agent_fleet.services.agents import RegisterAgent
from agent_fleet.services.context import Context, FleetOptions
from agent_fleet.services.fleet import Fleet
from agent_fleet.services.pulls import PullRequestOpener
from agent_fleet.services.receipts import references_issue
from agent_fleet.services.tasks import CreateTask
from agent_fleet.store.signal import AsyncioTaskSignal
from agent_fleet.store.sqlite import SqliteEventStore
from agent_fleet.testing import InMemoryForge

REPO = "acme/widgets"


class Clock:
    def now(self) -> datetime:
        return datetime(2026, 1, 1, tzinfo=UTC)


def carols_forge() -> InMemoryForge:
    """An in-memory forge where carol may write."""
    return InMemoryForge(writers={(REPO, "carol")})


Scenario = Callable[[Fleet, InMemoryForge], Awaitable[Any]]


def run(tmp_path: Path, scenario: Scenario, forge: InMemoryForge | None = None) -> Any:
    async def main() -> Any:
        store = SqliteEventStore(tmp_path / "fleet.db")
        await store.migrate()
        the_forge = forge or carols_forge()
        ctx = Context(
            store=store,
            clock=Clock(),
            signal=AsyncioTaskSignal(),
            forge=the_forge,
            options=FleetOptions(retry=RetryPolicy(base_delay=timedelta(hours=1))),
        )
        fleet = Fleet.assemble(ctx, public_url="https://fleet.example")
        try:
            return await scenario(fleet, the_forge)
        finally:
            await store.close()

    return asyncio.run(main())


async def issue_task(fleet: Fleet, number: int = 1) -> str:
    made = await fleet.webhooks.handle(
        IssueEvent(
            action="label_updated",
            repo=REPO,
            number=number,
            title="Export is empty",
            body="b",
            url=f"https://f.example/{REPO}/issues/{number}",
            state="open",
            labels=("agent:code",),
            sender="carol",
        ),
        "hook",
    )
    assert made.task_id is not None
    return made.task_id


async def take(fleet: Fleet, agent: str = "a") -> tuple[str, str]:
    await fleet.agents.register(
        RegisterAgent(
            agent_id=agent, agent_type="x", hostname=None, capabilities=("code",), max_concurrency=1
        )
    )
    handout = await fleet.dequeue.dequeue(await fleet.agents.get(agent), None, timedelta(0))
    assert handout is not None
    return handout.task.task_id, handout.lease


def receipt(task_id: str, lease: str, *artifacts: Artifact, summary: str = "fixed") -> Receipt:
    return Receipt(
        task_id=TaskId(task_id),
        agent_id=AgentId("a"),
        lease=lease,  # type: ignore[arg-type]
        status=ReceiptStatus.COMPLETED,
        summary=summary,
        artifacts=artifacts,
    )


def pushed(task_id: str, *files: str) -> tuple[Artifact, ...]:
    return (
        Artifact(type="branch", name=f"task/{task_id}", sha="ab" * 20),
        *(Artifact(type="file", path=f) for f in files),
    )


def pr_event(task_id: str, number: int, **changes: Any) -> PullRequestEvent:
    fields: dict[str, Any] = dict(
        action="opened",
        repo=REPO,
        number=number,
        url=f"https://f.example/{REPO}/pulls/{number}",
        branch=f"task/{task_id}",
        merged=False,
        state="open",
        sender="carol",
        head_repo=REPO,
    )
    fields.update(changes)
    return PullRequestEvent(**fields)


# --- the server opens the one PR ----------------------------------------------------


def test_a_pushed_branch_becomes_one_pr_that_closes_the_issue(tmp_path: Path) -> None:
    async def scenario(fleet: Fleet, forge: InMemoryForge) -> tuple[Task, list[ForgePull]]:
        await issue_task(fleet, number=7)
        task_id, lease = await take(fleet)
        done = await fleet.tasks.complete(
            task_id,
            receipt(task_id, lease, *pushed(task_id, "src/export.py", "tests/test_export.py")),
        )
        return done, [pr for (repo, _), pr in forge.pulls.items() if repo == REPO]

    done, pulls = run(tmp_path, scenario)
    assert done.state.value == "review_pending"
    (pr,) = pulls
    assert done.pr is not None and done.pr.number == pr.number and done.pr.url == pr.url
    assert pr.head_branch == f"task/{done.task_id}"
    assert "Closes #7" in pr.body and "`src/export.py`" in pr.body and "fixed" in pr.body
    assert f"https://fleet.example/tasks/{done.task_id}" in pr.body


def test_a_crash_between_creating_and_recording_the_pr_opens_no_second_one(tmp_path: Path) -> None:
    async def scenario(fleet: Fleet, forge: InMemoryForge) -> tuple[Task, int]:
        await issue_task(fleet)
        task_id, lease = await take(fleet)
        the_receipt = receipt(task_id, lease, *pushed(task_id, "a.py"))
        task = await fleet.tasks.get(task_id)
        # The first delivery created the PR, then the server died before recording it.
        await PullRequestOpener(forge).open_for(task, the_receipt)
        done = await fleet.tasks.complete(task_id, the_receipt)  # the agent delivers again
        return done, sum(repo == REPO for repo, _ in forge.pulls)

    done, count = run(tmp_path, scenario)
    assert count == 1 and done.state.value == "review_pending"


def test_a_review_round_pushes_to_the_same_pr_and_opens_none(tmp_path: Path) -> None:
    async def scenario(fleet: Fleet, forge: InMemoryForge) -> tuple[Task, int]:
        await issue_task(fleet)
        task_id, lease = await take(fleet)
        first = await fleet.tasks.complete(
            task_id, receipt(task_id, lease, *pushed(task_id, "a.py"))
        )
        assert first.pr is not None and first.pr.number is not None
        review = pr_event(task_id, first.pr.number, changes_requested="add a test")
        assert (await fleet.webhooks.handle(review, "hook")).result == "sent back for changes"
        _, lease2 = await take(fleet)
        again = await fleet.tasks.complete(
            task_id, receipt(task_id, lease2, *pushed(task_id, "t.py"))
        )
        return again, sum(repo == REPO for repo, _ in forge.pulls)

    again, count = run(tmp_path, scenario)
    assert again.state.value == "review_pending" and count == 1


def test_a_pr_the_forge_refuses_fails_the_attempt_with_its_reason(tmp_path: Path) -> None:
    forge = carols_forge()
    forge.refuse = "HTTP 404: The target couldn't be found."

    async def scenario(fleet: Fleet, _: InMemoryForge) -> Task:
        await issue_task(fleet)
        task_id, lease = await take(fleet)
        return await fleet.tasks.complete(task_id, receipt(task_id, lease, *pushed(task_id)))

    failed = run(tmp_path, scenario, forge)
    assert failed.state.value == "failed" and failed.failure is not None
    assert failed.failure.reason.value == "error" and "couldn't be found" in failed.failure.message
    assert failed.retry_at is not None


# --- no change is not success --------------------------------------------------------


def test_an_issue_task_whose_run_changed_nothing_fails_no_changes_and_retries(
    tmp_path: Path,
) -> None:
    async def scenario(fleet: Fleet, _: InMemoryForge) -> Task:
        await issue_task(fleet)
        task_id, lease = await take(fleet)
        return await fleet.tasks.complete(task_id, receipt(task_id, lease, summary="all good"))

    failed = run(tmp_path, scenario)
    assert failed.failure is not None and failed.failure.reason.value == "no_changes"
    assert failed.retry_at is not None
    assert failed.receipt is not None and failed.receipt.summary == "all good"


def test_a_task_without_a_repo_completes_with_no_artifacts(tmp_path: Path) -> None:
    async def scenario(fleet: Fleet, _: InMemoryForge) -> Task:
        await fleet.tasks.create(CreateTask(title="t", prompt="p", required_capabilities=("code",)))
        task_id, lease = await take(fleet)
        return await fleet.tasks.complete(
            task_id, receipt(task_id, lease, summary="nothing needed")
        )

    assert run(tmp_path, scenario).state.value == "completed"


# --- issue 15, finding 1: only the task's own PR moves it -----------------------------


def test_a_fork_pr_on_the_task_branch_closed_by_a_stranger_changes_nothing(tmp_path: Path) -> None:
    async def scenario(fleet: Fleet, forge: InMemoryForge) -> list[Any]:
        await issue_task(fleet)
        task_id, lease = await take(fleet)
        mine = await fleet.tasks.complete(
            task_id, receipt(task_id, lease, *pushed(task_id, "a.py"))
        )
        assert mine.pr is not None and mine.pr.number is not None
        fork = {"head_repo": "mallory/widgets", "sender": "mallory"}
        seen = [
            (await fleet.webhooks.handle(pr_event(task_id, 999, **fork), "hook")).result,
            (
                await fleet.webhooks.handle(
                    pr_event(task_id, 999, action="closed", state="closed", **fork), "hook"
                )
            ).result,
            (await fleet.tasks.get(task_id)).state.value,
        ]
        merged = pr_event(task_id, mine.pr.number, action="closed", state="closed", merged=True)
        seen.append((await fleet.webhooks.handle(merged, "hook")).result)
        seen.append((await fleet.tasks.get(task_id)).state.value)
        return seen

    opened, closed, between, merged, final = run(tmp_path, scenario)
    assert opened.startswith("ignored") and "mallory/widgets" in opened and "fork" in opened
    assert closed.startswith("ignored") and between == "review_pending"
    assert merged == "pull request merged" and final == "completed"


def test_a_pr_merged_in_another_repository_is_ignored(tmp_path: Path) -> None:
    async def scenario(fleet: Fleet, _: InMemoryForge) -> tuple[str, str]:
        await issue_task(fleet)
        task_id, lease = await take(fleet)
        await fleet.tasks.complete(task_id, receipt(task_id, lease, *pushed(task_id, "a.py")))
        elsewhere = pr_event(
            task_id, 100, repo="acme/other", head_repo="acme/other", merged=True, state="closed"
        )
        result = (await fleet.webhooks.handle(elsewhere, "hook")).result
        return result, (await fleet.tasks.get(task_id)).state.value

    result, state = run(tmp_path, scenario)
    assert result == "ignored: the pull request is in acme/other, not acme/widgets"
    assert state == "review_pending"


def test_only_writers_close_the_tasks_pr_and_only_its_pr_counts(tmp_path: Path) -> None:
    async def scenario(fleet: Fleet, _: InMemoryForge) -> list[str]:
        await issue_task(fleet)
        task_id, lease = await take(fleet)
        mine = await fleet.tasks.complete(
            task_id, receipt(task_id, lease, *pushed(task_id, "a.py"))
        )
        assert mine.pr is not None and mine.pr.number is not None
        by_stranger = pr_event(task_id, mine.pr.number, state="closed", sender="mallory")
        another = pr_event(task_id, mine.pr.number + 1, state="closed")
        stranger_review = pr_event(task_id, mine.pr.number, sender="mallory", changes_requested="x")
        return [
            (await fleet.webhooks.handle(by_stranger, "hook")).result,
            (await fleet.webhooks.handle(another, "hook")).result,
            (await fleet.webhooks.handle(stranger_review, "hook")).result,
            (await fleet.tasks.get(task_id)).state.value,
        ]

    stranger, another, review, state = run(tmp_path, scenario)
    assert stranger == "ignored: mallory has no write access"
    assert another.startswith("ignored: the task's pull request is #")
    assert review == "ignored: mallory has no write access"
    assert state == "review_pending"


# --- findings 10 and 11: receipts ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "refers"),
    [
        ("Closes #1", True),
        ("fixes acme/widgets#1.", True),
        ("see https://f.example/acme/widgets/issues/1", True),
        ("Fixes #12", False),
        ("Fixes #1234", False),
        ("other/widgets#1", False),
        ("https://f.example/acme/widgets/issues/12", False),
        ("abc#1", False),
        ("#1x", False),
    ],
)
def test_issue_references_match_whole_references(text: str, refers: bool) -> None:
    assert references_issue(text, REPO, 1) is refers


def test_a_pr_mentioning_issue_12_is_not_accepted_for_issue_1(tmp_path: Path) -> None:
    async def scenario(fleet: Fleet, forge: InMemoryForge) -> Task:
        await issue_task(fleet, number=1)
        task_id, lease = await take(fleet)
        forge.pull(REPO, 50, "feature/unrelated", body="Fixes #12")
        pr = Artifact(type="pr", url=f"https://f.example/{REPO}/pulls/50")
        return await fleet.tasks.complete(task_id, receipt(task_id, lease, pr))

    failed = run(tmp_path, scenario)
    assert failed.failure is not None and failed.failure.reason.value == "receipt_invalid"


def test_a_forks_pr_from_a_branch_named_like_the_tasks_is_not_the_tasks(tmp_path: Path) -> None:
    async def scenario(fleet: Fleet, forge: InMemoryForge) -> Task:
        await issue_task(fleet, number=1)
        task_id, lease = await take(fleet)
        forge.pull(REPO, 51, f"task/{task_id}", head_repo="mallory/widgets")
        pr = Artifact(type="pr", url=f"https://f.example/{REPO}/pulls/51")
        return await fleet.tasks.complete(task_id, receipt(task_id, lease, pr))

    failed = run(tmp_path, scenario)
    assert failed.failure is not None and failed.failure.reason.value == "receipt_invalid"
    assert "mallory/widgets" in failed.failure.message


def test_an_api_task_naming_a_repo_gets_its_pr_checked_too(tmp_path: Path) -> None:
    async def scenario(fleet: Fleet, _: InMemoryForge) -> Task:
        await fleet.tasks.create(
            CreateTask(
                title="t", prompt="p", required_capabilities=("code",), source=Source(repo=REPO)
            )
        )
        task_id, lease = await take(fleet)
        pr = Artifact(type="pr", url=f"https://f.example/{REPO}/pulls/4242")
        return await fleet.tasks.complete(task_id, receipt(task_id, lease, pr))

    failed = run(tmp_path, scenario)
    assert failed.failure is not None and failed.failure.reason.value == "receipt_invalid"
    assert failed.failure.message == "pull request #4242 does not exist"
