"""The EventStore contract, run against every backend in `conftest.BACKENDS`.

Each test states one promise of the port in concrete values; the SQLite-only
promises (migrations, durability, separate connections) close the file.
"""

import asyncio
import random
import re
import sqlite3
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agent_fleet.domain import agent as agent_model
from agent_fleet.domain import task as task_model
from agent_fleet.domain.agent import Agent, Registration
from agent_fleet.domain.errors import (
    AgentNotFound,
    AgentUnavailable,
    ConcurrencyConflict,
    FleetError,
)
from agent_fleet.domain.events import AgentEvent, AnyEvent, TaskAssigned, TaskEvent
from agent_fleet.domain.ids import AgentId, Lease, TaskId
from agent_fleet.domain.logbook import LogHead
from agent_fleet.domain.policies import RetryPolicy
from agent_fleet.domain.states import (
    AgentMode,
    AgentStatus,
    ExecutionMode,
    FailureReason,
    PrState,
    ReceiptStatus,
    TaskState,
)
from agent_fleet.domain.task import Task
from agent_fleet.domain.values import Artifact, PullRequest, Receipt, Source, Usage
from agent_fleet.ports.queries import AgentQuery, RecordedEvent, TaskQuery
from agent_fleet.ports.store import EventStore, Heartbeat
from agent_fleet.store.sqlfile import load_migrations
from agent_fleet.store.sqlite import SqliteEventStore
from agent_fleet.testing import InMemoryEventStore
from tests.contract.builders import T0, at, created
from tests.contract.conftest import OpenStore

pytestmark = pytest.mark.anyio

PULL = frozenset({ExecutionMode.UNDECIDED, ExecutionMode.HTTP_PULL})
POLICY = RetryPolicy(base_delay=timedelta(seconds=10))

Snapshot = tuple[list[RecordedEvent], tuple[list[Task], list[Agent]]]


# --- helpers ----------------------------------------------------------------------


def registration(
    agent_id: str,
    *,
    caps: tuple[str, ...] = (),
    slots: int = 1,
    mode: AgentMode = AgentMode.HTTP_PULL,
    host_id: str | None = None,
) -> Registration:
    return Registration(
        agent_id=AgentId(agent_id),
        agent_type="codex",
        mode=mode,
        hostname="box" if host_id else None,
        capabilities=caps,
        max_concurrency=slots,
        metadata={"os": "linux", "cores": 8},
        host_id=host_id,
    )


def enlist(agent_id: str, *, when: float = 0, **kwargs: Any) -> tuple[list[AgentEvent], Agent]:
    """An agent's registration events, and the agent they make."""
    events = agent_model.register(None, registration(agent_id, **kwargs), at(when), agent_id)
    agent = agent_model.replay(events)
    assert agent is not None
    return events, agent


async def add_agent(store: EventStore, agent_id: str, **kwargs: Any) -> Agent:
    events, agent = enlist(agent_id, **kwargs)
    await store.append(events)
    return agent


async def task_of(store: EventStore, task_id: str) -> Task:
    task = await store.get_task(TaskId(task_id))
    assert task is not None, task_id
    return task


async def agent_of(store: EventStore, agent_id: str) -> Agent:
    agent = await store.get_agent(AgentId(agent_id))
    assert agent is not None, agent_id
    return agent


async def decide(store: EventStore, task_id: str, decision: task_model.Decision) -> Task:
    """Apply one decision to the stored task, as the services do."""
    await store.append(decision(await task_of(store, task_id)))
    return await task_of(store, task_id)


async def task_stream(store: EventStore, task_id: str) -> list[TaskEvent]:
    return [r.event for r in await store.stream_events(task_id) if isinstance(r.event, TaskEvent)]


async def agent_stream(store: EventStore, agent_id: str) -> list[AgentEvent]:
    events = [r.event for r in await store.stream_events(agent_id)]
    return [e for e in events if isinstance(e, AgentEvent)]


async def all_events(store: EventStore) -> list[RecordedEvent]:
    return [r async for r in store.iter_events(batch=3)]


async def snapshot(store: EventStore) -> Snapshot:
    return await all_events(store), await store.all_projections()


async def claim_all(store: EventStore, agent: Agent, modes: frozenset[ExecutionMode]) -> list[str]:
    got: list[str] = []
    while task := await store.claim_task(agent, modes, Lease(f"L{len(got)}"), at(100)):
        got.append(task.task_id)
    return got


def ids(items: list[Task] | list[Agent]) -> list[str]:
    return [t.task_id if isinstance(t, Task) else t.agent_id for t in items]


# --- appends, reads, projections --------------------------------------------------


async def test_a_stream_is_read_a_page_at_a_time(store: EventStore) -> None:
    """The events API pages forward by version; the dashboard reads the newest page back."""
    await store.append(created("t1"))
    await store.append(created("other"))
    await decide(
        store, "t1", lambda t: task_model.assign(t, AgentId("a"), None, Lease("L"), at(1), "a")
    )
    for n in range(4):
        await decide(
            store, "t1", lambda t, n=n: task_model.report_progress(t, f"m{n}", None, at(n), "a")
        )
    whole = await store.stream_events("t1")
    assert [r.event.version for r in whole] == list(range(1, 8))

    async def after(version: int, limit: int) -> list[int]:
        return [r.event.version for r in await store.stream_events_after("t1", version, limit)]

    async def before(version: int | None, limit: int) -> list[int]:
        return [r.event.version for r in await store.stream_events_before("t1", version, limit)]

    assert [await after(0, 3), await after(3, 3), await after(6, 3), await after(7, 3)] == [
        [1, 2, 3],
        [4, 5, 6],
        [7],
        [],
    ]
    assert [await before(None, 3), await before(5, 3), await before(3, 10), await before(1, 3)] == [
        [5, 6, 7],
        [2, 3, 4],
        [1, 2],
        [],
    ]
    assert await store.stream_events_after("nobody", 0, 3) == []
    assert await store.stream_events_after("t1", 0, 100) == whole
    assert await store.stream_events_before("t1", None, 100) == whole


async def test_append_numbers_events_and_reads_them_back(store: EventStore) -> None:
    task_events = created("t1", caps=("py",))
    agent_events, agent = enlist("a1")
    assert await store.append(task_events) == [RecordedEvent(1, task_events[0])]
    assert await store.append(agent_events) == [RecordedEvent(2, agent_events[0])]
    assigned = task_model.assign(
        await task_of(store, "t1"), agent.agent_id, None, Lease("L"), at(1), "a1"
    )
    assert await store.append(assigned) == [RecordedEvent(3, assigned[0])]
    assert await store.append([]) == []

    assert await store.stream_events("t1") == [
        RecordedEvent(1, task_events[0]),
        RecordedEvent(3, assigned[0]),
    ]
    assert await store.stream_events("a1") == [RecordedEvent(2, agent_events[0])]
    assert await store.stream_events("nobody") == []
    everything = await all_events(store)
    assert [r.seq for r in everything] == [1, 2, 3]
    assert [r.event for r in everything] == [task_events[0], agent_events[0], assigned[0]]
    assert await store.get_task(TaskId("nobody")) is None
    assert await store.get_agent(AgentId("nobody")) is None


async def test_events_read_from_a_position_and_cursors_only_move_forward(
    store: EventStore, open_store: OpenStore
) -> None:
    for n in range(5):
        await store.append(created(f"t{n}"))
    after_two = [r.seq async for r in store.iter_events(batch=2, after=2)]
    assert after_two == [3, 4, 5]
    assert [r async for r in store.iter_events(after=5)] == []
    assert await store.read_cursor("comments") == 0
    await store.advance_cursor("comments", 4)
    await store.advance_cursor("comments", 2)  # a slower replica: ignored
    other = await open_store()
    assert await other.read_cursor("comments") == 4
    assert await other.read_cursor("something else") == 0


async def test_tasks_are_found_by_their_issue_however_busy_the_repo(store: EventStore) -> None:
    events = [e for n in range(600) for e in created(f"busy{n:03}", repo="o/r", issue=n + 100)]
    await store.append(events)
    await store.append(created("mine", repo="o/r", issue=7, when=1))
    await store.append(created("other-repo", repo="o/other", issue=7, when=2))
    found = await store.list_tasks(TaskQuery(repo="o/r", issue_number=7))
    assert ids(found) == ["mine"]
    assert ids(await store.list_tasks(TaskQuery(repo="o/r", issue_number=8))) == []


async def test_projection_equals_a_replay_of_the_stream_after_every_append(
    store: EventStore,
) -> None:
    source = Source(kind="forgejo", repo="o/r", issue_number=7, url="https://f/o/r/issues/7")
    new = task_model.NewTask(
        task_id=TaskId("t1"), title="fix", prompt="do it", required_capabilities=("py", "git"),
        priority=3, max_retries=1, timeout_secs=600, source=source,
    )  # fmt: skip
    failed = Receipt(
        task_id=TaskId("t1"), agent_id=AgentId("a"), status=ReceiptStatus.FAILED,
        summary="tried", error="boom", usage=Usage(tokens=12, cost_usd=0.25),
    )  # fmt: skip
    pr = Artifact(type="pr", url="https://f/o/r/pulls/9")
    done = Receipt(
        task_id=TaskId("t1"), agent_id=AgentId("b"), status=ReceiptStatus.COMPLETED,
        summary="done", lease=Lease("L2"), duration_seconds=3.5, artifacts=(pr,),
    )  # fmt: skip
    merged = PullRequest(url="https://f/o/r/pulls/9", number=9, state=PrState.MERGED)
    steps: list[task_model.Decision] = [
        lambda t: task_model.assign(t, AgentId("a"), None, Lease("L1"), at(1), "a"),
        lambda t: task_model.start(t, at(2), "a"),
        lambda t: task_model.report_progress(t, "half", 0.5, at(3), "a"),
        lambda t: task_model.accept_receipt(t, failed, at(4), "a", POLICY),
        lambda t: task_model.retry(t, at(20), "loop", manual=False, prompt="again"),
        lambda t: task_model.assign(t, AgentId("b"), "h1", Lease("L2"), at(21), "b"),
        lambda t: task_model.report_progress(t, "go", None, at(22), "b"),  # start + progress
        lambda t: task_model.accept_receipt(t, done, at(23), "b", POLICY),
        lambda t: task_model.update_pr(t, merged, at(24), "hook", POLICY),  # pr + completed
    ]
    await store.append(task_model.create(new, at(0), "op"))
    expected = task_model.replay(task_model.create(new, at(0), "op"))
    for step in steps:
        assert expected is not None
        events = step(expected)
        await store.append(events)
        for event in events:
            expected = task_model.evolve(expected, event)
        replayed = task_model.replay(await task_stream(store, "t1"))
        assert await store.get_task(TaskId("t1")) == replayed == expected
    final = await task_of(store, "t1")
    assert (final.state, final.version, final.attempt, final.prompt) == (
        TaskState.COMPLETED, 12, 1, "again",
    )  # fmt: skip
    assert (final.agent_id, final.host_id, final.pr, final.receipt) == ("b", "h1", merged, done)


async def test_agent_projection_equals_a_replay_of_its_stream(store: EventStore) -> None:
    events, first = enlist("a", caps=("py",), slots=2, when=0)
    await store.append(events)
    again = replace(registration("a"), capabilities=("py", "go"), max_concurrency=4)
    steps: list[Callable[[Agent], list[AgentEvent]]] = [
        lambda a: agent_model.go_offline(a, "silent", at(10), "loop"),
        lambda a: agent_model.come_online(a, at(11), "a"),
        lambda a: agent_model.register(a, again, at(12), "a"),
        lambda a: agent_model.deregister(a, at(13), "a"),
    ]
    for step in steps:
        await store.append(step(await agent_of(store, "a")))
        replayed = agent_model.replay(await agent_stream(store, "a"))
        assert await store.get_agent(AgentId("a")) == replayed
    final = await agent_of(store, "a")
    assert (final.status, final.version, final.capabilities, final.max_concurrency) == (
        AgentStatus.DEREGISTERED,
        5,
        ("py", "go"),
        4,
    )
    assert (final.registered_at, final.updated_at, final.metadata) == (
        at(0),
        at(13),
        first.metadata,
    )


# --- optimistic concurrency and atomicity -----------------------------------------


async def test_concurrent_appends_at_one_version_have_exactly_one_winner(
    store: EventStore,
) -> None:
    await store.append(created("t1"))
    task = await task_of(store, "t1")
    contenders = 8
    # Each contender also registers its own agent: a loser must leave no trace of it.
    batches = [
        [*enlist(f"b{n}")[0], *task_model.cancel(task, f"c{n}", at(1), f"op{n}")]
        for n in range(contenders)
    ]
    results = await asyncio.gather(*(store.append(b) for b in batches), return_exceptions=True)

    winners = [n for n, r in enumerate(results) if isinstance(r, list)]
    assert len(winners) == 1, results
    (won,) = winners
    losers = [r for r in results if isinstance(r, ConcurrencyConflict)]
    assert len(losers) == contenders - 1, results
    assert {(r.stream_id, r.version) for r in losers} == {("t1", 2)}
    assert [r.event for r in await all_events(store)] == [*created("t1"), *batches[won]]
    assert [r.seq for r in await all_events(store)] == [1, 2, 3]
    tasks, agents = await store.all_projections()
    assert ids(agents) == [f"b{won}"]
    assert tasks == [task_model.replay(await task_stream(store, "t1"))]
    assert (tasks[0].state, tasks[0].version) == (TaskState.CANCELLED, 2)


async def test_a_cursor_reader_following_concurrent_appenders_sees_each_event_once_in_order(
    open_store: OpenStore,
) -> None:
    """Appenders on separate instances (connections, pools), a reader on another moving
    its cursor as it goes, as the comment duty does: what it read, in the order it read
    it, is the whole log in seq order; it skipped nothing that committed late."""
    writers, per_writer = 4, 25
    appenders = [await open_store() for _ in range(writers)]
    reader = await open_store()
    finished = asyncio.Event()

    async def write(n: int) -> None:
        for i in range(per_writer):
            await appenders[n].append(created(f"w{n}-{i:02}"))

    async def follow() -> list[int]:
        seen: list[int] = []
        while True:
            last_pass = finished.is_set()  # the writers were done before this pass began
            async for recorded in reader.iter_events(batch=7, after=seen[-1] if seen else 0):
                seen.append(recorded.seq)
            if last_pass:
                return seen
            await asyncio.sleep(0)

    following = asyncio.create_task(follow())
    await asyncio.gather(*(write(n) for n in range(writers)))
    finished.set()
    seen = await following
    everything = [r.seq for r in await all_events(reader)]
    assert len(everything) == writers * per_writer
    assert seen == everything, "the cursor reader skipped, repeated or reordered events"


async def test_a_lost_race_changes_nothing_and_leaves_no_gap(store: EventStore) -> None:
    await store.append(created("t1"))
    await add_agent(store, "a")
    task = await task_of(store, "t1")
    await store.append(task_model.cancel(task, "first", at(1), "op"))
    before = await snapshot(store)

    stale = task_model.assign(task, AgentId("a"), None, Lease("L"), at(2), "a")
    with pytest.raises(ConcurrencyConflict) as raised:
        await store.append(stale)
    assert (raised.value.stream_id, raised.value.version) == ("t1", 2)
    assert await snapshot(store) == before
    assert await store.running_counts() == {}
    assert await store.count_tasks_by_state() == {"cancelled": 1}
    # The rolled-back append took no sequence number with it.
    assert [r.seq for r in await store.append(created("t2"))] == [4]


async def test_a_batch_is_all_or_nothing_across_streams(store: EventStore) -> None:
    await store.append(created("t1"))
    before = await snapshot(store)
    duplicate = [*created("t2"), *enlist("x")[0], *created("t3"), *created("t1")]
    with pytest.raises(ConcurrencyConflict):
        await store.append(duplicate)
    gap = [*created("t4"), replace(created("t4")[0], version=3)]
    with pytest.raises(ConcurrencyConflict):
        await store.append(gap)
    assert await snapshot(store) == before
    for missing in ("t2", "t3", "t4", "x"):
        assert await store.stream_events(missing) == []

    t5 = created("t5")[0]
    agent_events, agent = enlist("y")
    assigned = task_model.assign(
        task_model.evolve(None, t5), agent.agent_id, None, Lease("L"), at(1), "y"
    )
    recorded = await store.append([t5, *agent_events, *assigned])
    assert [(r.seq, r.event) for r in recorded] == [(2, t5), (3, agent_events[0]), (4, assigned[0])]
    task = await task_of(store, "t5")
    assert (task.state, task.version, task.agent_id) == (TaskState.ASSIGNED, 2, "y")
    assert await store.get_agent(AgentId("y")) == agent


async def test_the_event_log_refuses_a_rewrite_even_without_projections(
    store: EventStore,
) -> None:
    await store.append(created("t1"))
    await store.replace_projections([], [])
    with pytest.raises(ConcurrencyConflict):
        await store.append(created("t1", priority=9))
    assert [r.event for r in await all_events(store)] == created("t1")
    assert await store.all_projections() == ([], [])


# --- claims -----------------------------------------------------------------------


async def test_claim_takes_the_highest_priority_then_the_oldest(store: EventStore) -> None:
    for name, priority, when in [
        ("old-low", 0, 0), ("new-high", 5, 5), ("old-high", 5, 1),
        ("tie-b", 2, 3), ("tie-a", 2, 3), ("negative", -1, 0),
    ]:  # fmt: skip
        await store.append(created(name, priority=priority, when=when))
    agent = await add_agent(store, "a", slots=10, mode=AgentMode.SSH_CLI, host_id="h1")
    before = await task_of(store, "old-high")

    first = await store.claim_task(agent, PULL, Lease("lease-0"), at(10))
    expected = task_model.assign(before, AgentId("a"), "h1", Lease("lease-0"), at(10), "a")
    assert [r.event for r in await store.stream_events("old-high")] == [
        *created("old-high", priority=5, when=1),
        *expected,
    ]
    assert first == task_model.evolve(before, expected[0]) == await task_of(store, "old-high")
    assert first is not None
    assert (first.state, first.agent_id, first.host_id, first.lease, first.assigned_at) == (
        TaskState.ASSIGNED, "a", "h1", "lease-0", at(10),
    )  # fmt: skip
    rest = await claim_all(store, agent, PULL)
    assert rest == ["new-high", "tie-a", "tie-b", "old-low", "negative"]


async def test_claim_needs_every_required_capability(store: EventStore) -> None:
    for name, caps in [
        ("none", ()), ("py", ("py",)), ("py-git", ("py", "git")),
        ("py-rust", ("py", "rust")), ("rust", ("rust",)), ("py-dup", ("py", "py")),
    ]:  # fmt: skip
        await store.append(created(name, caps=caps))
    agent = await add_agent(store, "a", caps=("git", "py", "go"), slots=10)
    assert sorted(await claim_all(store, agent, PULL)) == ["none", "py", "py-dup", "py-git"]
    bare = await add_agent(store, "bare", slots=10)
    assert await claim_all(store, bare, PULL) == []
    rust = await add_agent(store, "rusty", caps=("rust", "py"), slots=10)
    assert sorted(await claim_all(store, rust, PULL)) == ["py-rust", "rust"]


async def test_claim_only_takes_the_given_execution_modes(store: EventStore) -> None:
    for mode in ExecutionMode:
        await store.append(created(f"t-{mode.value}", mode=mode))
    agent = await add_agent(store, "a", slots=10)
    assert await store.claim_task(agent, frozenset(), Lease("L"), at(1)) is None
    assert await claim_all(store, agent, frozenset({ExecutionMode.HTTP_PULL})) == ["t-http_pull"]
    ssh = frozenset({ExecutionMode.SSH_CLI, ExecutionMode.UNDECIDED})
    assert sorted(await claim_all(store, agent, ssh)) == ["t-ssh_cli", "t-undecided"]
    assert await store.count_tasks_by_state() == {"assigned": 3}


async def test_claim_respects_max_concurrency_per_agent(store: EventStore) -> None:
    for i in range(5):
        await store.append(created(f"t{i}", when=i))
    await store.append(created("closed", when=-1))
    await decide(store, "closed", lambda t: task_model.cancel(t, "no", at(0), "op"))
    a = await add_agent(store, "a", slots=2)
    b = await add_agent(store, "b", slots=1)
    assert await claim_all(store, a, PULL) == ["t0", "t1"]
    await decide(store, "t0", lambda t: task_model.start(t, at(101), "a"))
    assert await store.claim_task(a, PULL, Lease("more"), at(102)) is None  # running counts too
    assert await claim_all(store, b, PULL) == ["t2"]
    assert await store.running_counts() == {"a": 2, "b": 1}

    done = Receipt(task_id=TaskId("t0"), agent_id=AgentId("a"), status=ReceiptStatus.COMPLETED)
    await decide(store, "t0", lambda t: task_model.accept_receipt(t, done, at(103), "a", POLICY))
    assert await claim_all(store, a, PULL) == ["t3"]  # the finished task freed its slot
    assert await store.running_counts() == {"a": 2, "b": 1}
    assert await store.count_tasks_by_state() == {
        "assigned": 3, "completed": 1, "created": 1, "cancelled": 1,
    }  # fmt: skip


async def test_take_hands_an_unstarted_task_again_else_claims_within_the_agents_room(
    store: EventStore,
) -> None:
    """A pull agent's look in one call: what it holds and has not started comes first (a
    lost reply loses nothing), a started one only fills a slot, and a full agent claims
    nothing."""
    for i in range(3):
        await store.append(created(f"t{i}", when=i))
    a = await add_agent(store, "a", slots=2)
    first = await store.take_task(a, PULL, Lease("L0"), at(1))
    assert (first.task and first.task.task_id, first.claimed, first.full) == ("t0", True, False)
    again = await store.take_task(a, PULL, Lease("unused"), at(2))
    assert again.task is not None and (again.task.task_id, again.task.lease) == ("t0", "L0")
    assert (again.claimed, again.full) == (False, False)
    await decide(store, "t0", lambda t: task_model.start(t, at(3), "a"))
    second = await store.take_task(a, PULL, Lease("L1"), at(4))
    assert (second.task and second.task.task_id, second.claimed) == ("t1", True)
    await decide(store, "t1", lambda t: task_model.start(t, at(5), "a"))
    full = await store.take_task(a, PULL, Lease("L2"), at(6))
    assert (full.task, full.claimed, full.full) == (None, False, True)
    assert (await task_of(store, "t2")).state is TaskState.CREATED
    assert [type(e).__name__ for e in await task_stream(store, "t0")] == [
        "TaskCreated", "TaskAssigned", "TaskStarted",
    ]  # fmt: skip
    b = await add_agent(store, "b", slots=1)
    await store.append(agent_model.go_offline(b, "silent", at(7), "loop"))
    with pytest.raises(AgentUnavailable):
        await store.take_task(b, PULL, Lease("L3"), at(8))
    empty = await store.take_task(
        await add_agent(store, "c", slots=1), frozenset(), Lease("L"), at(9)
    )
    assert (empty.task, empty.claimed, empty.full) == (None, False, False)


async def test_no_claim_for_an_agent_that_is_not_online(store: EventStore) -> None:
    """The stored status decides, inside the claim: the caller's copy may be stale."""
    await store.append(created("t"))
    snapshot = await add_agent(store, "a", slots=5)  # online when the caller read it
    await store.append(agent_model.go_offline(snapshot, "silent", at(1), "loop"))
    with pytest.raises(AgentUnavailable) as offline:
        await store.claim_task(snapshot, PULL, Lease("L1"), at(2))
    assert offline.value.status == AgentStatus.OFFLINE

    await store.append(agent_model.come_online(await agent_of(store, "a"), at(3), "a"))
    await store.append(agent_model.deregister(await agent_of(store, "a"), at(4), "a"))
    with pytest.raises(AgentUnavailable) as gone:
        await store.claim_task(snapshot, PULL, Lease("L2"), at(5))
    assert gone.value.status == AgentStatus.DEREGISTERED
    _, stranger = enlist("never-registered", slots=5)
    with pytest.raises(AgentNotFound):
        await store.claim_task(stranger, PULL, Lease("L3"), at(6))

    assert (await task_of(store, "t")).state is TaskState.CREATED
    assert [type(e).__name__ for e in await task_stream(store, "t")] == ["TaskCreated"]
    back = await add_agent(store, "b", slots=5)
    claimed = await store.claim_task(back, PULL, Lease("L4"), at(7))
    assert claimed is not None and claimed.task_id == "t"


async def test_a_released_task_projects_as_its_replay_and_is_claimable_again(
    store: EventStore,
) -> None:
    await store.append(created("t"))
    agent = await add_agent(store, "a", slots=2)
    first = await store.claim_task(agent, PULL, Lease("L1"), at(1))
    assert first is not None
    await decide(store, "t", lambda t: task_model.release(t, "its agent left", at(2), "loop"))
    replayed = task_model.replay(await task_stream(store, "t"))
    assert await store.get_task(TaskId("t")) == replayed
    assert replayed is not None and (replayed.state, replayed.attempt) == (TaskState.CREATED, 0)
    again = await store.claim_task(agent, PULL, Lease("L2"), at(3))
    assert again is not None and (again.attempt, again.lease) == (0, "L2")
    assert [type(e).__name__ for e in await task_stream(store, "t")] == [
        "TaskCreated", "TaskAssigned", "TaskReleased", "TaskAssigned",
    ]  # fmt: skip


async def test_orphaned_tasks_are_held_by_agents_that_are_not_online(store: EventStore) -> None:
    for i, (name, owner) in enumerate(
        [("alive-1", "alive"), ("quiet-1", "quiet"), ("quiet-2", "quiet"), ("left-1", "left")]
    ):
        await store.append(created(name, caps=(owner,), when=i))
    await store.append(created("open", caps=("nobody",), when=9))
    for name in ("alive", "quiet", "left"):
        agent = await add_agent(store, name, caps=(name,), slots=5)
        assert await claim_all(store, agent, PULL)
    await decide(store, "quiet-2", lambda t: task_model.start(t, at(50), "quiet"))
    await store.append(agent_model.go_offline(await agent_of(store, "quiet"), "x", at(60), "l"))
    await store.append(agent_model.deregister(await agent_of(store, "left"), at(61), "left"))

    assert ids(await store.orphaned_tasks(10)) == ["quiet-1", "quiet-2", "left-1"]
    assert ids(await store.orphaned_tasks(2)) == ["quiet-1", "quiet-2"]  # oldest first
    await decide(store, "quiet-1", lambda t: task_model.release(t, "gone", at(70), "loop"))
    assert ids(await store.orphaned_tasks(10)) == ["quiet-2", "left-1"]
    released = await task_of(store, "quiet-1")
    assert (released.state, released.agent_id, released.lease, released.attempt) == (
        TaskState.CREATED, None, None, 0,
    )  # fmt: skip


@pytest.mark.parametrize("instances", [1, 4])
async def test_claim_race_hands_each_task_to_exactly_one_agent(
    open_store: OpenStore, instances: int
) -> None:
    """200 tasks, 16 agents, 32 claimers (two per agent), on 1 or 4 store instances.

    With several instances the SQL claimers hold separate connections (SQLite:
    separate threads contending for BEGIN IMMEDIATE; PostgreSQL: separate pools).
    """
    tasks, agents = 200, 16
    stores = [await open_store() for _ in range(instances)]
    seed = stores[0]
    names = [f"t{i:03}" for i in range(tasks)]
    for start in range(0, tasks, 50):
        await seed.append([e for i in range(start, start + 50) for e in created(names[i], when=i)])
    fleet = [await add_agent(seed, f"agent-{n:02}", slots=tasks) for n in range(agents)]

    async def claimer(n: int) -> list[tuple[str, str, str]]:
        store, agent = stores[n % instances], fleet[n % agents]
        got: list[tuple[str, str, str]] = []
        while task := await store.claim_task(agent, PULL, Lease(f"{n}-{len(got)}"), at(1)):
            assert task.agent_id == agent.agent_id
            got.append((task.task_id, agent.agent_id, str(task.lease)))
        return got

    results = await asyncio.gather(*(claimer(n) for n in range(2 * agents)))
    claims = [c for per_claimer in results for c in per_claimer]
    assert Counter(t for t, _, _ in claims) == Counter(names)
    # Every task is held by the agent (and lease) that claimed it, and by no one else.
    for task_id, agent_id, lease in claims:
        stored = await task_of(seed, task_id)
        assert (stored.state, stored.agent_id, stored.lease) == (
            TaskState.ASSIGNED,
            agent_id,
            lease,
        )
    holders = Counter(a for _, a, _ in claims)
    assert await seed.running_counts() == dict(holders)
    for agent in fleet:
        held = await seed.held_tasks(agent.agent_id)
        assert sorted(ids(held)) == sorted(t for t, a, _ in claims if a == agent.agent_id)
    assert await seed.count_tasks_by_state() == {"assigned": tasks}
    events = await all_events(seed)
    assert [r.seq for r in events] == list(range(1, tasks + agents + tasks + 1))
    assigned = Counter(r.event.stream_id for r in events if isinstance(r.event, TaskAssigned))
    assert assigned == Counter(names)


@pytest.mark.parametrize("instances", [1, 3])
async def test_concurrent_claims_never_overrun_max_concurrency(
    open_store: OpenStore, instances: int
) -> None:
    stores = [await open_store() for _ in range(instances)]
    await stores[0].append([e for i in range(60) for e in created(f"t{i:02}", when=i)])
    fleet = [await add_agent(stores[0], f"a{n}", slots=n + 1) for n in range(4)]

    async def claimer(n: int) -> int:
        agent, count = fleet[n % 4], 0
        while await stores[n % instances].claim_task(agent, PULL, Lease(f"{n}-{count}"), at(1)):
            count += 1
        return count

    claimed = await asyncio.gather(*(claimer(n) for n in range(24)))
    assert sum(claimed) == 1 + 2 + 3 + 4
    assert await stores[0].running_counts() == {"a0": 1, "a1": 2, "a2": 3, "a3": 4}
    assert await stores[0].count_tasks_by_state() == {"assigned": 10, "created": 50}


# --- queries ----------------------------------------------------------------------


async def test_list_tasks_filters_and_pages_newest_first(store: EventStore) -> None:
    # t3 and t4 share a creation time: the task id breaks the tie, across a page boundary.
    times = {"t0": 0, "t1": 1, "t2": 2, "t3": 3, "t4": 3, "t5": 5, "t6": 6, "t7": 7}
    for name, when in times.items():
        await store.append(created(name, when=when, repo="o/r" if name in "t1 t4 t6" else None))
    agent = await add_agent(store, "a", slots=3)
    assert await claim_all(store, agent, PULL) == ["t0", "t1", "t2"]
    await decide(store, "t1", lambda t: task_model.cancel(t, "x", at(9), "op"))

    pages, after = [], None
    for _ in range(5):  # bounded: a cursor that does not advance must fail, not hang
        page = await store.list_tasks(TaskQuery(limit=3, after=after))
        pages.append(ids(page))
        after = (page[-1].created_at, page[-1].task_id) if page else after
    assert pages == [["t7", "t6", "t5"], ["t4", "t3", "t2"], ["t1", "t0"], [], []]

    async def listed(**query: Any) -> list[str]:
        return ids(await store.list_tasks(TaskQuery(**query)))

    assert await listed(repo="o/r") == ["t6", "t4", "t1"]
    assert await listed(state=TaskState.ASSIGNED) == ["t2", "t0"]
    assert await listed(agent_id="a") == ["t2", "t1", "t0"]
    assert await listed(agent_id="a", state=TaskState.CANCELLED, repo="o/r") == ["t1"]
    assert await listed(repo="o/r", limit=2, after=(at(6), "t6")) == ["t4", "t1"]
    assert await listed(state=TaskState.COMPLETED) == []
    assert await listed(agent_id="nobody") == []


async def test_list_agents_filters_by_status_capability_and_mode(store: EventStore) -> None:
    await add_agent(store, "pull-go", caps=("go", "git"))
    await add_agent(store, "ssh-rust", caps=("rust", "git"), mode=AgentMode.SSH_CLI, host_id="h")
    await add_agent(store, "away", caps=("go",))
    away = await agent_of(store, "away")
    await store.append(agent_model.go_offline(away, "silent", at(5), "loop"))
    gone = await add_agent(store, "gone", caps=("gopher",))
    await store.append(agent_model.deregister(gone, at(6), "gone"))

    async def listed(**query: Any) -> list[str]:
        return ids(await store.list_agents(AgentQuery(**query)))

    assert await listed() == ["away", "gone", "pull-go", "ssh-rust"]
    assert await listed(status=AgentStatus.ONLINE) == ["pull-go", "ssh-rust"]
    assert await listed(status=AgentStatus.OFFLINE) == ["away"]
    assert await listed(status=AgentStatus.DEREGISTERED) == ["gone"]
    assert await listed(capability="go") == ["away", "pull-go"]  # exact, not a prefix
    assert await listed(capability="git") == ["pull-go", "ssh-rust"]
    assert await listed(mode=AgentMode.SSH_CLI) == ["ssh-rust"]
    assert await listed(mode=AgentMode.HTTP_PULL, status=AgentStatus.ONLINE, capability="git") == [
        "pull-go"
    ]
    assert await listed(capability="cobol") == []


async def test_held_tasks_running_counts_and_counts_by_state(store: EventStore) -> None:
    for i in range(6):
        await store.append(created(f"t{i}", when=10 - i))  # t5 is the oldest
    a = await add_agent(store, "a", slots=3)
    b = await add_agent(store, "b", slots=3)
    assert await claim_all(store, a, PULL) == ["t5", "t4", "t3"]
    assert await store.claim_task(b, PULL, Lease("b"), at(1)) is not None
    await decide(store, "t4", lambda t: task_model.start(t, at(2), "a"))
    await decide(
        store, "t3", lambda t: task_model.fail(t, FailureReason.ERROR, "x", at(3), "a", POLICY)
    )

    assert ids(await store.held_tasks(AgentId("a"))) == ["t5", "t4"]  # oldest first; t3 failed
    assert ids(await store.held_tasks(AgentId("b"))) == ["t2"]
    assert await store.held_tasks(AgentId("nobody")) == []
    assert await store.running_counts() == {"a": 2, "b": 1}
    assert await store.count_tasks_by_state() == {
        "assigned": 2, "running": 1, "failed": 1, "created": 2,
    }  # fmt: skip


async def test_timed_out_tasks_are_held_past_assigned_at_plus_timeout(store: EventStore) -> None:
    for name, timeout in [("short", 30), ("long", 90), ("mid", 60), ("done", 10), ("free", 5)]:
        await store.append(created(name, timeout=timeout, when=len(name)))
    agent = await add_agent(store, "a", slots=10)
    for name in ("short", "long", "mid", "done"):
        await decide(
            store,
            name,
            lambda t: task_model.assign(t, AgentId("a"), None, Lease("L"), at(100), "a"),
        )
    await decide(store, "mid", lambda t: task_model.start(t, at(150), "a"))  # running is held too
    done = Receipt(task_id=TaskId("done"), agent_id=agent.agent_id, status=ReceiptStatus.COMPLETED)
    await decide(store, "done", lambda t: task_model.accept_receipt(t, done, at(101), "a", POLICY))

    assert await store.timed_out_tasks(at(130), 10) == []  # a deadline that is now is not past
    assert ids(await store.timed_out_tasks(at(130.5), 10)) == ["short"]
    assert ids(await store.timed_out_tasks(at(1000), 10)) == ["short", "mid", "long"]
    assert ids(await store.timed_out_tasks(at(1000), 2)) == ["short", "mid"]
    await decide(store, "short", lambda t: task_model.cancel(t, "x", at(1001), "op"))
    assert ids(await store.timed_out_tasks(at(1002), 10)) == ["mid", "long"]


async def test_retries_due_are_failed_or_lost_tasks_whose_retry_time_came(
    store: EventStore,
) -> None:
    for name in ("failed", "lost", "final", "later"):
        await store.append(created(name, max_retries=0 if name == "final" else 2))
    agent = await add_agent(store, "a", slots=10)
    await claim_all(store, agent, PULL)
    fail = FailureReason.ERROR
    await decide(store, "failed", lambda t: task_model.fail(t, fail, "x", at(10), "a", POLICY))
    await decide(store, "lost", lambda t: task_model.lose(t, "gone", at(5), "loop", POLICY))
    await decide(store, "final", lambda t: task_model.fail(t, fail, "x", at(0), "a", POLICY))
    await decide(store, "later", lambda t: task_model.fail(t, fail, "x", at(50), "a", POLICY))
    assert (await task_of(store, "final")).retry_at is None

    assert await store.retries_due(at(14), 10) == []
    assert ids(await store.retries_due(at(15), 10)) == ["lost"]  # due at 5 + 10: inclusive
    assert ids(await store.retries_due(at(20), 10)) == ["lost", "failed"]
    assert ids(await store.retries_due(at(999), 10)) == ["lost", "failed", "later"]
    assert ids(await store.retries_due(at(999), 1)) == ["lost"]
    await decide(store, "lost", lambda t: task_model.retry(t, at(16), "loop", manual=False))
    assert ids(await store.retries_due(at(999), 10)) == ["failed", "later"]


async def test_stale_agents_are_online_pull_agents_silent_since_the_cutoff(
    store: EventStore,
) -> None:
    for name in ("quiet", "fresh", "never", "exact", "offline"):
        await add_agent(store, name)
    await add_agent(store, "ssh", mode=AgentMode.SSH_CLI, host_id="h")
    offline = await agent_of(store, "offline")
    await store.append(agent_model.go_offline(offline, "x", at(1), "loop"))
    beats = {"quiet": at(10), "fresh": at(90), "exact": at(50), "offline": at(0), "ssh": at(0)}
    for name, when in beats.items():
        await store.record_heartbeat(Heartbeat(agent_id=AgentId(name), at=at(0)))
        await store.record_heartbeat(Heartbeat(agent_id=AgentId(name), at=when))  # the last counts

    assert await store.last_heartbeat(AgentId("fresh")) == at(90)
    assert await store.last_heartbeat(AgentId("never")) is None
    assert await store.last_heartbeats() == {AgentId(name): when for name, when in beats.items()}
    assert ids(await store.stale_agents(at(50), 10)) == ["never", "quiet"]  # exact: not yet
    assert ids(await store.stale_agents(at(50.001), 10)) == ["exact", "never", "quiet"]
    assert ids(await store.stale_agents(at(50.001), 2)) == ["exact", "never"]  # by agent id
    assert ids(await store.stale_agents(at(0), 10)) == ["never"]


async def test_all_projections_and_replace_projections_round_trip(store: EventStore) -> None:
    for name in ("t2", "t1", "t3"):
        await store.append(created(name, repo="o/r", timeout=30))
    agent = await add_agent(store, "b", slots=5)
    await add_agent(store, "a")
    assert await claim_all(store, agent, PULL) == ["t1", "t2", "t3"]
    tasks, agents = await store.all_projections()
    assert (ids(tasks), ids(agents)) == (["t1", "t2", "t3"], ["a", "b"])

    await store.replace_projections([], [])
    assert await store.all_projections() == ([], [])
    assert await store.count_tasks_by_state() == {}
    assert len(await all_events(store)) == 3 + 2 + 3  # the log is untouched

    await store.replace_projections(tasks, agents)
    assert await store.all_projections() == (tasks, agents)
    # The queryable columns are rebuilt from the bodies, not only the bodies stored.
    assert await store.running_counts() == {"b": 3}
    assert ids(await store.timed_out_tasks(at(200), 10)) == ["t1", "t2", "t3"]
    assert ids(await store.list_tasks(TaskQuery(repo="o/r", agent_id="b"))) == ["t3", "t2", "t1"]
    reopened = replace(tasks[0], state=TaskState.CREATED, agent_id=None, assigned_at=None)
    await store.replace_projections([reopened, *tasks[1:]], agents)
    claimed = await store.claim_task(agent, PULL, Lease("again"), at(300))
    assert claimed is not None and claimed.task_id == "t1"


async def test_reconcile_projections_finds_every_difference_and_writes_only_when_asked(
    store: EventStore,
) -> None:
    for name in ("t1", "t2", "t3"):
        await store.append(created(name, repo="o/r"))
    agent = await add_agent(store, "a", slots=5)
    await claim_all(store, agent, PULL)
    tasks, agents = await store.all_projections()
    replayed = {t.task_id: t for t in tasks}
    by_agent = {a.agent_id: a for a in agents}
    assert await store.reconcile_projections(replayed, by_agent, write=False) == []
    assert await store.reconcile_projections(replayed, by_agent, write=True) == []

    # Stored: t1 changed, t2 gone, an extra task and an extra agent with no events.
    extra_task = replace(tasks[0], task_id=TaskId("zz"))
    extra_agent = replace(agents[0], agent_id=AgentId("zz"))
    changed = replace(tasks[0], title="not what happened", priority=7)
    await store.replace_projections([changed, tasks[2], extra_task], [*agents, extra_agent])
    found = await store.reconcile_projections(replayed, by_agent, write=False)
    assert sorted((d.kind, d.key, d.problem) for d in found) == [
        ("agent", "zz", "extra"),
        ("task", "t1", "differs"),
        ("task", "t2", "missing"),
        ("task", "zz", "extra"),
    ]
    assert (await store.all_projections())[0] == [changed, tasks[2], extra_task]  # untouched

    again = await store.reconcile_projections(replayed, by_agent, write=True)
    assert sorted(again, key=str) == sorted(found, key=str)  # what it found, it rewrote
    assert await store.all_projections() == (tasks, agents)
    assert await store.reconcile_projections(replayed, by_agent, write=False) == []
    # The columns are the replay's too: t1's priority and t2's row are queryable again.
    assert ids(await store.list_tasks(TaskQuery(repo="o/r"))) == ["t3", "t2", "t1"]
    assert await store.running_counts() == {"a": 3}


async def test_event_batches_page_the_log_in_order_and_stop_cleanly(store: EventStore) -> None:
    for i in range(7):
        await store.append(created(f"t{i}"))
    pages = [[r.seq for r in page] async for page in store.event_batches(batch=3)]
    assert pages == [[1, 2, 3], [4, 5, 6], [7]]
    assert [[r.seq for r in p] async for p in store.event_batches(batch=3, after=5)] == [[6, 7]]
    first = [r async for r in store.iter_events(batch=3)]
    assert [r.event for r in first] == [e for p in await _pages(store) for e in p]
    # A reader that stops after a page leaves the store usable (its next read is dropped).
    async for page in store.event_batches(batch=2):
        assert len(page) == 2
        break
    assert len(await all_events(store)) == 7


async def _pages(store: EventStore) -> list[list[AnyEvent]]:
    return [[r.event for r in page] async for page in store.event_batches(batch=4)]


# --- logs and webhook deliveries --------------------------------------------------


async def test_task_logs_append_by_offset_and_read_back(store: EventStore) -> None:
    t = TaskId("t1")
    assert await store.append_log(t, 0, 0, b"hello ", 100) == LogHead(6, 6, False)
    assert await store.append_log(t, 0, 3, b"lo world", 100) == LogHead(11, 11, False)  # overlap
    assert await store.append_log(t, 0, 20, b"gap", 100) == LogHead(11, 11, False)  # refused
    assert await store.append_log(t, 1, 0, b"second", 100) == LogHead(6, 6, False)
    assert await store.read_log(t, 0, 0, 1000) == (b"hello world", LogHead(11, 11, False))
    assert await store.read_log(t, 0, 4, 5) == (b"o wor", LogHead(11, 11, False))
    assert await store.read_log(t, 1, 0, 1000) == (b"second", LogHead(6, 6, False))
    assert await store.read_log(t, 2, 0, 1000) == (b"", LogHead())

    head = await store.append_log(t, 0, 11, b"!" * 20, 15)
    marker = b"\n[agent-fleet: log truncated here: the limit of 15 bytes was reached]\n"
    assert head == LogHead(31, 15 + len(marker), True)
    assert await store.append_log(t, 0, 31, b"more", 15) == LogHead(35, 15 + len(marker), True)
    assert (await store.read_log(t, 0, 9, 1000))[0] == b"ld!!!!" + marker


async def test_task_logs_count_source_bytes_for_rewritten_chunks(store: EventStore) -> None:
    """A redacted chunk stands for more bytes of the run's file than it stores."""
    t = TaskId("t1")
    assert await store.append_log(t, 0, 0, b"key=[redacted]\n", 100, 44) == LogHead(44, 15, False)
    assert await store.append_log(t, 0, 44, b"next\n", 100, 5) == LogHead(49, 20, False)
    # An overlap that cannot be cut is refused whole; the ack says where to resume.
    assert await store.append_log(t, 0, 40, b"[x]\nnext\nmore\n", 100, 19) == LogHead(49, 20, False)
    assert await store.append_log(t, 0, 49, b"more\n", 100, 5) == LogHead(54, 25, False)
    assert await store.read_log(t, 0, 0, 1000) == (
        b"key=[redacted]\nnext\nmore\n",
        LogHead(54, 25, False),
    )


async def test_webhook_deliveries_are_new_once_by_id_and_by_content(store: EventStore) -> None:
    assert await store.record_delivery("d1", "body-1", "issues", at(0)) is True
    assert await store.record_delivery("d1", "body-2", "issues", at(1)) is False  # same id
    assert await store.record_delivery("d2", "body-1", "issues", at(2)) is False  # redelivery
    assert await store.record_delivery("d3", "body-3", "issues", at(3)) is True
    await store.forget_delivery("d1")
    await store.forget_delivery("never-seen")
    assert await store.record_delivery("d2", "body-1", "issues", at(4)) is True


# --- SQLite only: the file itself ---------------------------------------------------

SCHEMA_MIGRATIONS = (
    "CREATE TABLE IF NOT EXISTS schema_migrations "
    "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
)


def install_release(path: Path, upto: int) -> None:
    """A database as an older release left it: migrations 1..upto applied, nothing after."""
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.execute(SCHEMA_MIGRATIONS)
        for number, name, sql in load_migrations("sqlite")[:upto]:
            conn.executescript(sql)
            conn.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, ?)", (number, name, "2025-06-01")
            )


def normalized(schema: list[str]) -> list[str]:
    """Schema SQL without comments and layout, which sqlite_master keeps verbatim."""
    return [" ".join(re.sub(r"--[^\n]*", "", sql).split()) for sql in schema]


async def test_sqlite_migrating_step_by_step_gives_the_fresh_schema(tmp_path: Path) -> None:
    numbers = [n for n, _, _ in load_migrations("sqlite")]
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) >= 3
    fresh = SqliteEventStore(tmp_path / "fresh.db")
    assert await fresh.migrate() == len(numbers)
    expected = normalized(await fresh.schema())
    assert await fresh.migrate() == 0  # idempotent
    assert normalized(await fresh.schema()) == expected
    await fresh.close()
    assert any(sql.startswith("CREATE TABLE events") for sql in expected)

    for upto in range(len(numbers) + 1):
        install_release(tmp_path / f"from-{upto}.db", upto)
        upgraded = SqliteEventStore(tmp_path / f"from-{upto}.db")
        assert await upgraded.migrate() == len(numbers) - upto
        assert await upgraded.migrate() == 0
        assert normalized(await upgraded.schema()) == expected, f"upgraded from {upto}"
        await upgraded.close()


async def test_sqlite_data_survives_closing_and_reopening(tmp_path: Path) -> None:
    path = tmp_path / "fleet.db"
    first = SqliteEventStore(path)
    await first.migrate()
    await first.append(created("t1"))
    await first.append(created("t2", when=1))
    agent = await add_agent(first, "a", slots=2)
    assert await first.claim_task(agent, PULL, Lease("L1"), at(5)) is not None
    await first.record_heartbeat(Heartbeat(agent_id=AgentId("a"), at=at(6)))
    await first.append_log(TaskId("t1"), 0, 0, b"output", 100)
    assert await first.record_delivery("d1", "k1", "issues", at(7)) is True
    before = await snapshot(first)
    await first.close()

    again = SqliteEventStore(path)
    assert await again.migrate() == 0
    assert await snapshot(again) == before
    assert await again.last_heartbeat(AgentId("a")) == at(6)
    assert await again.read_log(TaskId("t1"), 0, 0, 100) == (b"output", LogHead(6, 6, False))
    assert await again.record_delivery("d1", "k1", "issues", at(8)) is False
    # It carries on where it stopped: the next claim, the next seq.
    claimed = await again.claim_task(agent, PULL, Lease("L2"), at(9))
    assert claimed is not None and claimed.task_id == "t2"
    assert [r.seq for r in await again.stream_events("t2")] == [2, 5]
    await again.close()
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_sqlite_two_stores_migrating_one_file_at_once_both_succeed(tmp_path: Path) -> None:
    path = tmp_path / "fleet.db"
    # Hold the write lock until both stores are under way: each must read the applied
    # versions inside its own write transaction. WAL is set first: switching a new file
    # to WAL is a separate way to fail (see the next test).
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA journal_mode = WAL")
    holder.execute(SCHEMA_MIGRATIONS)
    holder.execute("BEGIN IMMEDIATE")
    stores = [SqliteEventStore(path) for _ in range(2)]
    both = asyncio.gather(*(s.migrate() for s in stores), return_exceptions=True)
    await asyncio.sleep(0.3)
    holder.execute("COMMIT")
    holder.close()
    results = await both
    for s in stores:
        await s.close()
    assert not [r for r in results if isinstance(r, BaseException)], results
    assert sorted(results) == [0, len(load_migrations("sqlite"))]  # type: ignore[type-var]


async def test_sqlite_opening_a_new_file_waits_for_another_writer(tmp_path: Path) -> None:
    path = tmp_path / "fleet.db"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA user_version = 1")  # the file exists, still in rollback-journal mode
    writer.execute("BEGIN IMMEDIATE")
    store = SqliteEventStore(path)
    opening = asyncio.create_task(store.migrate())
    await asyncio.sleep(0.3)  # well inside busy_timeout (10 s): the store should be waiting
    writer.execute("COMMIT")
    writer.close()
    try:
        assert await opening == len(load_migrations("sqlite"))
    finally:
        await store.close()


# --- the fake against the real thing --------------------------------------------------


def random_decision(rng: random.Random, task: Task, now: datetime) -> list[TaskEvent]:
    """One lifecycle step picked at random; it may be refused (a domain error)."""
    receipt = Receipt(task_id=task.task_id, agent_id=AgentId("g"), status=ReceiptStatus.COMPLETED)
    match rng.randrange(7):
        case 0:
            return task_model.start(task, now, "g")
        case 5:
            return task_model.release(task, "gone before it started", now, "loop")
        case 1:
            return task_model.fail(task, FailureReason.ERROR, "x", now, "g", POLICY)
        case 2:
            return task_model.lose(task, "gone", now, "loop", POLICY)
        case 3:
            return task_model.retry(task, now, "loop", manual=False)
        case 4:
            return task_model.cancel(task, "x", now, "op")
        case _:
            return task_model.accept_receipt(task, receipt, now, "g", POLICY)


async def test_the_fake_answers_like_sqlite_under_a_random_workload(tmp_path: Path) -> None:
    """Same calls, same answers: a seeded mix of writes, lost races, and every query."""
    rng = random.Random(2026)
    real = SqliteEventStore(tmp_path / "diff.db")
    await real.migrate()
    fake = InMemoryEventStore()

    async def same(name: str, *args: Any, unordered: bool = False) -> None:
        answers: list[object] = []
        for store in (fake, real):
            try:
                answer = await getattr(store, name)(*args)
                answers.append(sorted(ids(answer)) if unordered else answer)
            except ConcurrencyConflict as e:
                answers.append(("conflict", e.stream_id, e.version))
            except FleetError as e:  # a claim by an agent that is not online, ...
                answers.append((type(e).__name__, str(e)))
        assert answers[0] == answers[1], (name, args, answers)

    def caps() -> tuple[str, ...]:
        return tuple(rng.sample(["a", "b", "c"], rng.randint(0, 2)))

    now, stale = T0, list[AnyEvent]()
    for step in range(400):
        now += timedelta(seconds=rng.choice([0, 0.5, 3]))
        tasks, agents = await fake.all_projections()
        roll = rng.random()
        if roll < 0.2 or not tasks:
            new = created(
                f"t{step}", caps=caps(), priority=rng.randint(0, 2), when=rng.randint(0, 9),
                mode=rng.choice(list(ExecutionMode)), repo=rng.choice([None, "o/r"]),
                timeout=rng.randint(1, 20),
            )  # fmt: skip
            await same("append", new)
        elif roll < 0.3 or not agents:
            mode = rng.choice(list(AgentMode))
            registered, _ = enlist(f"g{step % 7}", caps=caps(), slots=rng.randint(1, 3), mode=mode)
            await same("append", registered)  # registering a known id again conflicts: compared too
        elif roll < 0.6:
            modes = frozenset(rng.sample(list(ExecutionMode), rng.randint(1, 3)))
            await same("claim_task", rng.choice(agents), modes, Lease(f"L{step}"), now)
        elif roll < 0.9:
            try:
                decided = random_decision(rng, rng.choice(tasks), now)
            except FleetError:
                continue
            await same("append", decided)
            await same("append", stale)  # an older decision arriving late: a lost race
            stale = list(decided) if rng.random() < 0.3 else stale
        else:
            agent = rng.choice(agents)
            await same("record_heartbeat", Heartbeat(agent_id=agent.agent_id, at=now))
            await same("append", agent_model.go_offline(agent, "x", now, "loop"))

    assert [r async for r in fake.iter_events()] == [r async for r in real.iter_events()]
    for name in ("all_projections", "running_counts", "count_tasks_by_state"):
        await same(name)
    for query in [TaskQuery(limit=n) for n in (1, 4, 1000)] + [
        TaskQuery(state=state, repo="o/r") for state in TaskState
    ]:
        await same("list_tasks", query)
    for agent_id in (AgentId(f"g{n}") for n in range(7)):
        await same("held_tasks", agent_id)
        await same("list_tasks", TaskQuery(agent_id=agent_id, limit=3))
    await same("list_agents", AgentQuery())
    await same("list_agents", AgentQuery(status=AgentStatus.ONLINE, capability="a"))
    await same("orphaned_tasks", 1000)
    for moment in (T0, now - timedelta(seconds=60), now + timedelta(seconds=60)):
        # Ties in deadline or retry time have no defined order: compared as sets.
        await same("timed_out_tasks", moment, 1000, unordered=True)
        await same("retries_due", moment, 1000, unordered=True)
        await same("stale_agents", moment, 1000)
    await real.close()
