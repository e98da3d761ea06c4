"""The webhook use case with a stand-in forge: only writers set agents to work."""

import asyncio
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent_fleet.domain.errors import ForgeError
from agent_fleet.domain.ids import AgentId
from agent_fleet.domain.policies import RetryPolicy
from agent_fleet.domain.states import ReceiptStatus
from agent_fleet.domain.values import Artifact, Receipt
from agent_fleet.ports.forge import ForgePull, IssueEvent
from agent_fleet.services.agents import RegisterAgent
from agent_fleet.services.context import Context, FleetOptions
from agent_fleet.services.fleet import Fleet
from agent_fleet.store.signal import AsyncioTaskSignal
from agent_fleet.store.sqlite import SqliteEventStore
from agent_fleet.testing import InMemoryForge

REPO = "acme/widgets"


class Clock:
    def now(self) -> datetime:
        return datetime(2026, 1, 1, tzinfo=UTC)


def issue(sender: str, labels: tuple[str, ...] = ("agent:code:python",)) -> IssueEvent:
    return IssueEvent(
        action="label_updated",
        repo=REPO,
        number=12,
        title="t",
        body="b",
        url=None,
        state="open",
        labels=labels,
        sender=sender,
    )


def test_only_writers_trigger_work(tmp_path: Path) -> None:
    async def scenario() -> tuple[list[str], int, int]:
        store = SqliteEventStore(tmp_path / "w.db")
        await store.migrate()
        forge = InMemoryForge(writers={(REPO, "carol")})
        ctx = Context(store=store, clock=Clock(), signal=AsyncioTaskSignal(), forge=forge)
        fleet = Fleet.assemble(ctx)
        results = [
            (await fleet.webhooks.handle(issue("mallory"), "hook")).result,
            (await fleet.webhooks.handle(issue("mallory"), "hook")).result,
            (await fleet.webhooks.handle(issue("carol"), "hook")).result,
        ]
        tasks = await store.count_tasks_by_state()
        await store.close()
        return results, len(forge.calls), tasks.get("created", 0)

    results, calls, created = asyncio.run(scenario())
    assert results == ["ignored: mallory has no write access"] * 2 + ["created"]
    assert calls == 2, "the second answer for mallory came from the cache"
    assert created == 1


def forge_with(pulls: dict[int, ForgePull], down: bool = False) -> InMemoryForge:
    """Carol may write; these PRs exist (`down`: every call fails, an outage)."""
    return InMemoryForge(
        writers={(REPO, "carol")},
        pulls={(REPO, n): pr for n, pr in pulls.items()},
        fail_next=1_000 if down else 0,
    )


def pull(number: int, branch: str, body: str = "") -> ForgePull:
    return ForgePull(
        number=number,
        url=f"https://f.example/acme/widgets/pulls/{number}",
        head_branch=branch,
        body=body,
        merged=False,
        closed=False,
    )


def test_receipts_claiming_a_pr_are_checked_with_the_forge(tmp_path: Path) -> None:
    async def run_case(pr_url: str, forge: InMemoryForge) -> tuple[str, str | None]:
        store = SqliteEventStore(tmp_path / f"r{secrets.token_hex(3)}.db")
        await store.migrate()
        ctx = Context(
            store=store,
            clock=Clock(),
            signal=AsyncioTaskSignal(),
            forge=forge,
            options=FleetOptions(retry=RetryPolicy(base_delay=timedelta(hours=1))),
        )
        fleet = Fleet.assemble(ctx)
        made = await fleet.webhooks.handle(issue("carol"), "hook")
        assert made.task_id is not None
        await fleet.agents.register(
            RegisterAgent(
                agent_id="a",
                agent_type="x",
                hostname=None,
                capabilities=("code:python",),
                max_concurrency=1,
            )
        )
        handout = await fleet.dequeue.dequeue(await fleet.agents.get("a"), None, timedelta(0))
        assert handout is not None
        receipt = Receipt(
            task_id=handout.task.task_id,
            agent_id=AgentId("a"),
            lease=handout.lease,
            status=ReceiptStatus.COMPLETED,
            artifacts=(Artifact(type="pr", url=pr_url),),
        )
        try:
            task = await fleet.tasks.complete(handout.task.task_id, receipt)
            return task.state.value, task.failure.message if task.failure else None
        finally:
            await store.close()

    wrong_branch = asyncio.run(
        run_case("https://f.example/acme/widgets/pulls/5", forge_with({5: pull(5, "task/x")}))
    )
    assert wrong_branch[0] == "failed" and "not 'task/" in (wrong_branch[1] or "")
    refs_issue = asyncio.run(
        run_case(
            "https://f.example/acme/widgets/pulls/5",
            forge_with({5: pull(5, "x", "Closes #12")}),
        )
    )
    assert refs_issue == ("review_pending", None)
    missing = asyncio.run(run_case("https://f.example/acme/widgets/pulls/9", forge_with({})))
    assert missing == ("failed", "pull request #9 does not exist")
    elsewhere = asyncio.run(
        run_case("https://f.example/evil/repo/pulls/5", forge_with({5: pull(5, "x", "Closes #12")}))
    )
    assert elsewhere[0] == "failed" and "evil/repo" in (elsewhere[1] or "")
    with pytest.raises(ForgeError):
        asyncio.run(run_case("https://f.example/acme/widgets/pulls/5", forge_with({}, down=True)))
