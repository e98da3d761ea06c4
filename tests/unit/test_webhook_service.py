"""The webhook use case with a stand-in forge: only writers set agents to work."""

import asyncio
from datetime import UTC, datetime
from pathlib import Path

from agent_fleet.services.context import Context
from agent_fleet.services.fleet import Fleet
from agent_fleet.services.signal import AsyncioTaskSignal
from agent_fleet.services.webhooks import IssueEvent
from agent_fleet.store.sqlite import SqliteEventStore


class Clock:
    def now(self) -> datetime:
        return datetime(2026, 1, 1, tzinfo=UTC)


class FakeForge:
    """Answers like ForgejoClient.can_write; counts calls to prove the cache."""

    def __init__(self, writers: set[str]) -> None:
        self.writers = writers
        self.calls = 0

    async def can_write(self, repo: str, user: str) -> bool:
        self.calls += 1
        return user in self.writers

    async def close(self) -> None:
        return None


def issue(sender: str, labels: tuple[str, ...] = ("agent:code:python",)) -> IssueEvent:
    return IssueEvent(
        action="label_updated",
        repo="acme/widgets",
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
        forge = FakeForge({"carol"})
        ctx = Context(store=store, clock=Clock(), signal=AsyncioTaskSignal())
        fleet = Fleet.assemble(ctx, forge=forge)
        results = [
            (await fleet.webhooks.handle(issue("mallory"), "hook")).result,
            (await fleet.webhooks.handle(issue("mallory"), "hook")).result,
            (await fleet.webhooks.handle(issue("carol"), "hook")).result,
        ]
        tasks = await store.count_tasks_by_state()
        await store.close()
        return results, forge.calls, tasks.get("created", 0)

    results, calls, created = asyncio.run(scenario())
    assert results == ["ignored: mallory has no write access"] * 2 + ["created"]
    assert calls == 2, "the second answer for mallory came from the cache"
    assert created == 1
