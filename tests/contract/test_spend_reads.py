"""The store contract for spend, holds and report windows, on every backend.

Tasks are driven through the real decisions; each test states one promise of the
port (`EventStore`) in concrete values.
"""

from datetime import timedelta

import pytest

from agent_fleet.domain import agent as agent_model
from agent_fleet.domain import holds
from agent_fleet.domain import task as task_model
from agent_fleet.domain.agent import Agent, Registration
from agent_fleet.domain.budget import Spend
from agent_fleet.domain.events import TaskCreated, TaskFailed
from agent_fleet.domain.ids import AgentId, Lease, TaskId
from agent_fleet.domain.policies import RetryPolicy
from agent_fleet.domain.states import (
    AgentMode,
    ExecutionMode,
    ReceiptStatus,
    TaskState,
)
from agent_fleet.domain.task import Task
from agent_fleet.domain.values import Receipt, Usage
from agent_fleet.ports.queries import TaskQuery
from agent_fleet.ports.store import EventStore
from agent_fleet.services.rebuild import rebuild
from tests.contract.builders import at, created

pytestmark = pytest.mark.anyio

PULL = frozenset({ExecutionMode.UNDECIDED, ExecutionMode.HTTP_PULL})
POLICY = RetryPolicy(base_delay=timedelta(0))


async def _agent(store: EventStore, agent_id: str = "a1") -> Agent:
    reg = Registration(
        agent_id=AgentId(agent_id),
        agent_type="codex",
        mode=AgentMode.HTTP_PULL,
        hostname="box-1",
        capabilities=(),
        max_concurrency=10,
    )
    events = agent_model.register(None, reg, at(0), agent_id)
    await store.append(events)
    agent = agent_model.replay(events)
    assert agent is not None
    return agent


async def _task(store: EventStore, task_id: str) -> Task:
    task = await store.get_task(TaskId(task_id))
    assert task is not None
    return task


async def _run(
    store: EventStore, task_id: str, *, when: float, cost: float | None, tokens: int | None
) -> Task:
    """Assign the task to a1 and end the attempt with a failed receipt reporting usage."""
    task = await _task(store, task_id)
    await store.append(task_model.assign(task, AgentId("a1"), None, Lease("L"), at(when), "a1"))
    task = await _task(store, task_id)
    receipt = Receipt(
        task_id=TaskId(task_id),
        agent_id=AgentId("a1"),
        status=ReceiptStatus.FAILED,
        error="boom",
        usage=Usage(tokens=tokens, cost_usd=cost),
    )
    await store.append(task_model.accept_receipt(task, receipt, at(when + 1), "a1", POLICY))
    return await _task(store, task_id)


async def test_spend_adds_up_across_attempts_and_lists_the_biggest_spenders_first(
    store: EventStore,
) -> None:
    await _agent(store)
    for task_id in ("cheap", "dear", "wordy", "idle"):
        await store.append(created(task_id, repo="acme/widgets", max_retries=5))
    await _run(store, "cheap", when=10, cost=0.10, tokens=100)
    await _run(store, "dear", when=20, cost=0.50, tokens=10)
    dear = await _task(store, "dear")
    await store.append(task_model.retry(dear, at(30), "test", manual=True))
    dear = await _run(store, "dear", when=40, cost=0.25, tokens=20)
    await _run(store, "wordy", when=50, cost=None, tokens=5000)

    assert dear.spend == Spend(tokens=30, cost_usd=0.75)
    ranked = await store.list_tasks(TaskQuery(by_spend=True, limit=10))
    assert [t.task_id for t in ranked] == ["dear", "cheap", "wordy", "idle"]
    failed = await store.list_tasks(TaskQuery(by_spend=True, state=TaskState.FAILED, limit=2))
    assert [t.task_id for t in failed] == ["dear", "cheap"]
    assert (await rebuild(store, write=False)).matches


async def test_a_held_task_is_not_claimed_until_released_when_its_day_comes(
    store: EventStore,
) -> None:
    agent = await _agent(store)
    await store.append(created("held", repo="acme/widgets"))
    task = await _task(store, "held")
    await store.append(holds.hold_for_budget(task, Spend(cost_usd=5.0), 5.0, at(10), "test"))
    held = await _task(store, "held")
    assert held.state is TaskState.CREATED and held.hold is not None
    assert await store.claim_task(agent, PULL, Lease("L1"), at(20)) is None

    midnight = held.hold.until
    assert await store.holds_due(midnight - timedelta(seconds=1), 10) == []
    (due,) = await store.holds_due(midnight, 10)
    await store.append(holds.release(due, midnight, "loop:holds", manual=False))
    assert await store.holds_due(midnight, 10) == []
    claimed = await store.claim_task(agent, PULL, Lease("L2"), midnight)
    assert claimed is not None and claimed.task_id == "held" and claimed.hold is None
    assert (await rebuild(store, write=False)).matches


async def test_streams_of_a_window_are_the_touched_tasks_and_the_waiting_ones(
    store: EventStore,
) -> None:
    await _agent(store)
    await store.append(created("old-done", when=0, max_retries=0))
    await _run(store, "old-done", when=1, cost=None, tokens=None)
    await store.append(created("old-waiting", when=2))
    await store.append(created("old-touched", when=3))
    await _run(store, "old-touched", when=500, cost=None, tokens=None)
    await store.append(created("new", when=600))

    streams = await store.task_streams_since(at(100))
    assert sorted(streams) == ["new", "old-touched", "old-waiting"]
    history = await store.event_outlines(["old-touched", "new"])
    assert [(r.event.stream_id, r.event.version) for r in history] == [
        ("new", 1),
        ("old-touched", 1),
        ("old-touched", 2),
        ("old-touched", 3),
    ]  # stream by stream, each in version order
    assert [r.seq for r in history if r.event.stream_id == "old-touched"] == sorted(
        r.seq for r in history if r.event.stream_id == "old-touched"
    )
    assert await store.event_outlines([]) == []


async def test_outlines_keep_what_reports_count_and_drop_the_free_text(
    store: EventStore,
) -> None:
    await _agent(store)
    await store.append(created("t", repo="acme/widgets", when=0))
    task = await _task(store, "t")
    await store.append(task_model.assign(task, AgentId("a1"), None, Lease("L"), at(5), "a1"))
    task = await _task(store, "t")
    await store.append(task_model.report_progress(task, "half way", 0.5, at(6), "a1"))
    task = await _task(store, "t")
    spent = Receipt(
        task_id=TaskId("t"),
        agent_id=AgentId("a1"),
        status=ReceiptStatus.FAILED,
        summary="a long account of what went wrong",
        error="boom",
        usage=Usage(tokens=70, cost_usd=0.5),
    )
    await store.append(task_model.accept_receipt(task, spent, at(10), "a1", POLICY))
    full = [r.event for r in await store.stream_events("t")]
    outlined = [r.event for r in await store.event_outlines(["t"])]
    assert [type(e).__name__ for e in full] == [
        "TaskCreated", "TaskAssigned", "TaskStarted", "TaskProgress", "TaskFailed",
    ]  # fmt: skip
    made, assigned, failed = outlined  # started and progress change neither state nor spend
    assert isinstance(made, TaskCreated) and isinstance(failed, TaskFailed)
    assert (made.prompt, made.title, made.source.repo) == ("", "", "acme/widgets")
    assert failed.message == "" and failed.receipt is not None
    assert (failed.receipt.summary, failed.receipt.error) == ("", None)
    assert failed.receipt.usage == Usage(tokens=70, cost_usd=0.5)
    original = full[-1]
    assert isinstance(original, TaskFailed) and original.message == "boom"
    assert (failed.reason, failed.retry_at) == (original.reason, original.retry_at)
    assert assigned == full[1]  # nothing to empty


async def test_a_repos_receipts_since_a_moment_ignore_case_and_other_repos(
    store: EventStore,
) -> None:
    await _agent(store)
    await store.append(created("early", repo="Acme/Widgets", when=0, max_retries=0))
    await _run(store, "early", when=1, cost=1.0, tokens=1)
    await store.append(created("late", repo="acme/widgets", when=100, max_retries=0))
    await _run(store, "late", when=200, cost=2.0, tokens=2)
    await store.append(created("other", repo="acme/gadgets", when=100, max_retries=0))
    await _run(store, "other", when=200, cost=4.0, tokens=4)

    got = await store.repo_receipts_since("ACME/widgets", at(100))
    assert [(r.event.stream_id, type(r.event).__name__) for r in got] == [("late", "TaskFailed")]
    assert len(await store.repo_receipts_since("acme/widgets", at(0))) == 2
