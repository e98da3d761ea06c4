"""Budgets and reports through the services, on a real SQLite file and on the in-memory fake
(held to the same contract), with a clock the test moves: the daily repository budget
holds new tasks until midnight or an operator's retry; a task's receipts past its budget
end its retries; a report read through the store's window equals one over the whole log."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agent_fleet.domain.budget import DailyBudgets, TaskBudget
from agent_fleet.domain.events import TaskEvent
from agent_fleet.domain.ids import AgentId
from agent_fleet.domain.insight import facts_of
from agent_fleet.domain.policies import RetryPolicy
from agent_fleet.domain.report import AgentInfo, build_report
from agent_fleet.domain.states import FailureReason, ReceiptStatus, TaskState
from agent_fleet.domain.task import Task
from agent_fleet.domain.values import Artifact, Receipt, Source, Usage
from agent_fleet.ports.store import EventStore
from agent_fleet.services.agents import RegisterAgent
from agent_fleet.services.comments import comment_text
from agent_fleet.services.context import Context, FleetOptions
from agent_fleet.services.fleet import Fleet
from agent_fleet.services.rebuild import rebuild
from agent_fleet.services.tasks import CreateTask
from agent_fleet.store.signal import AsyncioTaskSignal
from agent_fleet.store.sqlite import SqliteEventStore
from agent_fleet.testing import InMemoryEventStore, ManualClock

pytestmark = pytest.mark.anyio
LATE_EVENING = datetime(2026, 5, 4, 21, 0, tzinfo=UTC)
OPTIONS = FleetOptions(
    retry=RetryPolicy(
        base_delay=timedelta(0),
        max_delay=timedelta(0),
        budget=TaskBudget(max_cost_usd=1.0),
    ),
    daily_budgets=DailyBudgets(default=2.0, per_repo={"acme/big": 50.0}),
    default_max_retries=5,
)


@pytest.fixture(params=["sqlite", "memory"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[EventStore]:
    opened: EventStore = (
        SqliteEventStore(tmp_path / "fleet.db")
        if request.param == "sqlite"
        else InMemoryEventStore()
    )
    await opened.migrate()
    yield opened
    await opened.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(LATE_EVENING)


@pytest.fixture
async def fleet(store: EventStore, clock: ManualClock) -> Fleet:
    fleet = Fleet.assemble(
        Context(store=store, clock=clock, signal=AsyncioTaskSignal(), options=OPTIONS)
    )
    for agent_id, agent_type in (("a1", "claude"), ("a2", "codex")):
        await fleet.agents.register(
            RegisterAgent(
                agent_id=agent_id,
                agent_type=agent_type,
                hostname=f"{agent_id}.box",
                capabilities=(),
                max_concurrency=5,
            )
        )
    return fleet


async def create(fleet: Fleet, title: str, repo: str | None) -> Task:
    source = Source(kind="forgejo", repo=repo, issue_number=1) if repo else Source()
    return await fleet.tasks.create(
        CreateTask(title=title, prompt="p", required_capabilities=(), source=source)
    )


async def run_once(
    fleet: Fleet, agent: str, status: ReceiptStatus, usd: float, tokens: int = 100
) -> Task:
    """The agent dequeues one task and ends the attempt with a receipt reporting this usage."""
    handout = await fleet.dequeue.dequeue(await fleet.agents.get(agent), None, timedelta(0))
    assert handout is not None, "nothing to dequeue"
    receipt = Receipt(
        task_id=handout.task.task_id,
        agent_id=AgentId(agent),
        lease=handout.lease,
        status=status,
        error="tests fail" if status is ReceiptStatus.FAILED else None,
        usage=Usage(tokens=tokens, cost_usd=usd),
        # A task from an issue must have changed something to complete (else `no_changes`).
        artifacts=(Artifact(type="commit", sha="0123abcd"),),
    )
    return await fleet.tasks.complete(handout.task.task_id, receipt)


async def test_a_spent_repository_gets_its_new_tasks_held_until_midnight(
    fleet: Fleet, clock: ManualClock, store: EventStore
) -> None:
    await create(fleet, "first", "acme/widgets")
    done = await run_once(fleet, "a1", ReceiptStatus.COMPLETED, 2.5)
    assert done.state is TaskState.COMPLETED

    held = await create(fleet, "second", "Acme/Widgets")  # same repo, any case
    other = await create(fleet, "elsewhere", "acme/big")  # its own, larger limit
    assert held.state is TaskState.CREATED and held.hold is not None
    assert held.hold.reason == (
        "repository Acme/Widgets spent $2.50 of its $2.00 daily budget today"
    )
    assert held.hold.until == datetime(2026, 5, 5, tzinfo=UTC)
    assert other.hold is None
    got = await fleet.dequeue.dequeue(await fleet.agents.get("a2"), None, timedelta(0))
    assert got is not None and got.task.task_id == other.task_id  # the held one is passed over
    assert await fleet.dequeue.dequeue(await fleet.agents.get("a1"), None, timedelta(0)) is None

    assert await fleet.holds.tick() == 0
    clock.advance(timedelta(hours=3))  # past midnight UTC
    assert await fleet.holds.tick() == 1
    released = await fleet.tasks.get(held.task_id)
    assert released.hold is None and released.state is TaskState.CREATED
    types = [type(r.event).__name__ for r in await store.stream_events(held.task_id)]
    assert types == ["TaskCreated", "TaskHeld", "TaskHoldLifted"]
    # A new day: yesterday's spend no longer holds anything.
    assert (await create(fleet, "third", "acme/widgets")).hold is None
    assert (await rebuild(store, write=False)).matches


async def test_an_operators_retry_releases_a_held_task_at_once(
    fleet: Fleet, store: EventStore
) -> None:
    await create(fleet, "first", "acme/widgets")
    await run_once(fleet, "a1", ReceiptStatus.COMPLETED, 9.0)
    held = await create(fleet, "second", "acme/widgets")
    released = await fleet.tasks.retry(held.task_id)
    assert released.hold is None and released.attempt == 0
    (event,) = [r.event for r in await store.stream_events(held.task_id)][-1:]
    assert type(event).__name__ == "TaskHoldLifted" and event.actor == "operator"
    got = await fleet.dequeue.dequeue(await fleet.agents.get("a1"), None, timedelta(0))
    assert got is not None and got.task.task_id == held.task_id


async def test_receipts_past_the_task_budget_end_its_retries(
    fleet: Fleet, store: EventStore
) -> None:
    task = await create(fleet, "pricey", None)
    after = await run_once(fleet, "a1", ReceiptStatus.FAILED, 0.6)
    assert after.state is TaskState.CREATED and after.attempt == 1  # $0.60 of $1: retried
    after = await run_once(fleet, "a2", ReceiptStatus.FAILED, 0.6)
    assert after.state is TaskState.FAILED and after.retry_at is None
    assert after.failure is not None and after.failure.reason is FailureReason.BUDGET_EXCEEDED
    assert after.spend.cost_usd == pytest.approx(1.2) and after.spend.tokens == 200
    await fleet.sweeper.run_due_retries()
    assert (await fleet.tasks.get(task.task_id)).state is TaskState.FAILED
    spending = await fleet.insight.task_spend(task.task_id)
    task_now, attempts = spending.task, spending.attempts
    assert [(a.attempt, a.agent_id, a.spend.cost_usd) for a in attempts] == [
        (0, "a1", 0.6),
        (1, "a2", 0.6),
    ]
    assert task_now.spend.cost_usd == pytest.approx(sum(a.spend.cost_usd for a in attempts))
    # The issue is told why no retry follows.
    last = (await store.stream_events(task.task_id))[-1].event
    said = comment_text(last, task_now)
    assert said is not None and "`budget_exceeded`" in said[1] and "No retry will follow" in said[1]
    assert "spent $1.2000 of its $1.0000 budget across 2 attempts" in said[1]


async def test_the_report_read_through_the_window_equals_one_over_the_whole_log(
    fleet: Fleet, clock: ManualClock, store: EventStore
) -> None:
    await create(fleet, "old", "acme/widgets")  # done long before the window
    await run_once(fleet, "a1", ReceiptStatus.COMPLETED, 0.1)
    await create(fleet, "old and waiting", None)
    clock.advance(timedelta(days=3))
    for n in range(3):
        await create(fleet, f"new {n}", "acme/widgets")
        clock.advance(timedelta(minutes=7))
    await run_once(fleet, "a1", ReceiptStatus.COMPLETED, 0.2)
    await run_once(fleet, "a2", ReceiptStatus.FAILED, 0.3)
    clock.advance(timedelta(minutes=30))

    windowed = await fleet.insight.report(timedelta(hours=24))
    history = [r.event async for r in store.iter_events()]
    agents = {
        "a1": AgentInfo(agent_type="claude", hostname="a1.box"),
        "a2": AgentInfo(agent_type="codex", hostname="a2.box"),
    }
    task_events = [e for e in history if isinstance(e, TaskEvent)]
    everything = build_report(facts_of(task_events), agents, windowed.since, windowed.until)
    assert windowed == everything
    assert (windowed.tasks_created, windowed.completed, windowed.failed) == (3, 1, 1)
    assert windowed.queue_depth == 3  # "old and waiting", one new task, the failed one retried
    assert windowed.spend.cost_usd == pytest.approx(0.5)


async def test_a_report_of_now_is_reused_for_a_moment_then_made_again(
    fleet: Fleet, clock: ManualClock
) -> None:
    first = await fleet.insight.report(timedelta(hours=1))
    await create(fleet, "meanwhile", None)
    clock.advance(timedelta(seconds=20))
    assert await fleet.insight.report(timedelta(hours=1)) is first
    clock.advance(timedelta(seconds=11))
    again = await fleet.insight.report(timedelta(hours=1))
    assert again.tasks_created == first.tasks_created + 1
    exact = await fleet.insight.report(timedelta(hours=1), until=again.until)
    assert exact == again and exact is not again
