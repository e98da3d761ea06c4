"""Receipt validation: a claimed pull request must exist in the task's repo and be its own."""

import pytest

from agent_fleet.domain.errors import ForgeError
from agent_fleet.domain.ids import AgentId, TaskId
from agent_fleet.domain.states import ReceiptStatus
from agent_fleet.domain.task import Task
from agent_fleet.domain.values import Artifact, Receipt, Source
from agent_fleet.services.receipts import check_receipt
from agent_fleet.services.tasks import CreateTask
from agent_fleet.testing import InMemoryForge
from tests.service.world import World, run

REPO = "acme/widgets"


def receipt(task: Task, *urls: str) -> Receipt:
    return Receipt(
        task_id=TaskId(task.task_id),
        agent_id=AgentId("w"),
        status=ReceiptStatus.COMPLETED,
        artifacts=tuple(Artifact(type="pr", url=u) for u in urls),
    )


async def issue_task(world: World) -> Task:
    source = Source(kind="forgejo", repo=REPO, issue_number=12)
    cmd = CreateTask(title="t", prompt="p", required_capabilities=(), source=source)
    return await world.fleet.tasks.create(cmd)


def pr_url(number: int, repo: str = REPO) -> str:
    return f"https://forge.example/{repo}/pulls/{number}"


def test_what_is_not_checked() -> None:
    async def scenario() -> None:
        forge = InMemoryForge()
        world = World(forge=forge)
        task = await issue_task(world)
        plain = await world.task()
        assert (await check_receipt(task, receipt(task), forge)).valid  # no PR claimed
        assert (
            await check_receipt(plain, receipt(plain, pr_url(9)), forge)
        ).valid  # not an issue's
        assert (await check_receipt(task, receipt(task, pr_url(9)), None)).valid  # no forge API
        assert forge.calls == []

    run(scenario())


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://forge.example/acme/widgets/issues/3", "not a pull request URL"),
        (pr_url(13, "evil/fork"), "the pull request is in evil/fork, not acme/widgets"),
        (pr_url(99), "pull request #99 does not exist"),
        (pr_url(14), "pull request #14 is from 'feature/x' of acme/widgets, not 'task/"),
    ],
)
def test_a_pr_that_is_not_the_tasks_own_is_refused_with_the_reason(url: str, reason: str) -> None:
    async def scenario() -> None:
        forge = InMemoryForge()
        world = World(forge=forge)
        task = await issue_task(world)
        forge.pull(REPO, 14, "feature/x", body="unrelated")
        verdict = await check_receipt(task, receipt(task, url), forge)
        assert not verdict.valid and reason in verdict.reason, verdict

    run(scenario())


def test_a_pr_from_the_task_branch_or_naming_the_issue_is_accepted() -> None:
    async def scenario() -> None:
        forge = InMemoryForge()
        world = World(forge=forge)
        task = await issue_task(world)
        forge.pull(REPO, 13, task.branch_name)
        forge.pull(REPO, 14, "feature/x", body="Closes #12")
        for number in (13, 14):
            assert (await check_receipt(task, receipt(task, pr_url(number)), forge)).valid
        # The repo is compared without regard to case, as the forge does.
        upper = pr_url(13, REPO.upper())
        assert (await check_receipt(task, receipt(task, upper), forge)).valid

    run(scenario())


def test_a_forge_outage_is_not_the_agents_fault_the_error_propagates() -> None:
    async def scenario() -> None:
        forge = InMemoryForge(fail_next=1)
        world = World(forge=forge)
        task = await issue_task(world)
        with pytest.raises(ForgeError):
            await check_receipt(task, receipt(task, pr_url(13)), forge)

    run(scenario())
