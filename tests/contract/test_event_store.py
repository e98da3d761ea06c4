"""The EventStore contract: appends, projections, concurrency, claims, queries."""

import asyncio
from collections import Counter
from datetime import timedelta

import pytest

from agent_fleet.domain import task as task_model
from agent_fleet.domain.errors import ConcurrencyConflict
from agent_fleet.domain.events import TaskAssigned
from agent_fleet.domain.ids import AgentId, Lease, TaskId
from agent_fleet.domain.policies import RetryPolicy
from agent_fleet.domain.states import (
    AgentMode,
    AgentStatus,
    ExecutionMode,
    FailureReason,
    TaskState,
)
from agent_fleet.ports import AgentQuery, EventStore, Heartbeat, TaskQuery
from tests.contract.builders import agent_of, at, created, registered
from tests.contract.conftest import Runner

PULL = frozenset({ExecutionMode.UNDECIDED, ExecutionMode.HTTP_PULL})


def test_append_reads_back_and_projects(store: EventStore, run: Runner) -> None:
    events = created("t1", caps=("a",))
    recorded = run(store.append(events))
    assert [r.event for r in recorded] == events
    task = run(store.get_task(TaskId("t1")))
    assert task == task_model.replay(list(events))
    assert run(store.get_task(TaskId("missing"))) is None
    assert [r.event for r in run(store.stream_events("t1"))] == events


def test_seq_is_global_and_gap_free(store: EventStore, run: Runner) -> None:
    for i in range(5):
        run(store.append(created(f"t{i}")))
    run(store.append(registered("a")))

    async def collect() -> list[int]:
        return [r.seq async for r in store.iter_events(batch=2)]

    seqs = run(collect())
    assert seqs == list(range(seqs[0], seqs[0] + 6))


def test_a_lost_race_raises_and_changes_nothing(store: EventStore, run: Runner) -> None:
    run(store.append(created("t1")))
    task = run(store.get_task(TaskId("t1")))
    assert task is not None
    first = task_model.cancel(task, "one", at(1), "op")
    second = task_model.assign(task, AgentId("a"), None, Lease("L"), at(1), "a")
    run(store.append(first))
    with pytest.raises(ConcurrencyConflict):
        run(store.append(second))
    after = run(store.get_task(TaskId("t1")))
    assert after is not None and after.state is TaskState.CANCELLED
    assert [type(r.event).__name__ for r in run(store.stream_events("t1"))] == [
        "TaskCreated",
        "TaskCancelled",
    ]


def test_a_batch_is_all_or_nothing(store: EventStore, run: Runner) -> None:
    run(store.append(created("t1")))
    batch = [*created("t2"), *created("t1")]  # the second is a duplicate version 1
    with pytest.raises(ConcurrencyConflict):
        run(store.append(batch))
    assert run(store.get_task(TaskId("t2"))) is None
    assert len(run(store.stream_events("t2"))) == 0


def test_claim_takes_priority_then_age_and_matches_capabilities(
    store: EventStore, run: Runner
) -> None:
    run(store.append(created("old-low", when=0, priority=0)))
    run(store.append(created("new-high", when=5, priority=5)))
    run(store.append(created("old-high", when=1, priority=5)))
    run(store.append(created("needs-rust", when=0, priority=9, caps=("rust",))))
    run(store.append(created("ssh-only", when=0, priority=9, mode=ExecutionMode.SSH_CLI)))
    agent = agent_of(registered("a", caps=("python",), slots=10))
    run(store.append(registered("a", caps=("python",), slots=10)))
    order = []
    while task := run(store.claim_task(agent, PULL, Lease(f"l{len(order)}"), at(10))):
        order.append(task.task_id)
        assert task.state is TaskState.ASSIGNED and task.agent_id == "a"
    assert order == ["old-high", "new-high", "old-low"]
    claimed = run(store.get_task(TaskId("old-high")))
    assert claimed is not None and claimed.lease == "l0" and claimed.assigned_at == at(10)


def test_claim_respects_max_concurrency(store: EventStore, run: Runner) -> None:
    for i in range(3):
        run(store.append(created(f"t{i}")))
    events = registered("a", slots=2)
    run(store.append(events))
    agent = agent_of(events)
    assert run(store.claim_task(agent, PULL, Lease("1"), at(1))) is not None
    assert run(store.claim_task(agent, PULL, Lease("2"), at(1))) is not None
    assert run(store.claim_task(agent, PULL, Lease("3"), at(1))) is None
    assert run(store.running_counts()) == {"a": 2}
    assert run(store.count_tasks_by_state()) == {"assigned": 2, "created": 1}
    assert [t.task_id for t in run(store.held_tasks(AgentId("a")))] == ["t0", "t1"]


def test_claim_race_hands_each_task_out_once(store: EventStore, run: Runner) -> None:
    tasks, agents = 120, 12
    for i in range(tasks):
        run(store.append(created(f"t{i:03}", when=i)))
    fleet = []
    for n in range(agents):
        events = registered(f"agent-{n}", slots=tasks)
        run(store.append(events))
        fleet.append(agent_of(events))

    async def claimer(agent_index: int) -> list[str]:
        got = []
        while True:
            agent = fleet[agent_index]
            task = await store.claim_task(agent, PULL, Lease(f"{agent_index}-{len(got)}"), at(1))
            if task is None:
                return got
            got.append(task.task_id)

    async def race() -> list[list[str]]:
        return await asyncio.gather(*(claimer(n) for n in range(agents)))

    claimed = [t for per_agent in run(race()) for t in per_agent]
    assert Counter(claimed) == Counter({f"t{i:03}": 1 for i in range(tasks)})

    async def assignments() -> Counter[str]:
        return Counter(
            [
                r.event.stream_id
                async for r in store.iter_events()
                if isinstance(r.event, TaskAssigned)
            ]
        )

    assert set(run(assignments()).values()) == {1}


def test_list_tasks_filters_and_pages(store: EventStore, run: Runner) -> None:
    for i in range(7):
        run(store.append(created(f"t{i}", when=i, repo="o/r" if i % 2 else None)))
    page = run(store.list_tasks(TaskQuery(limit=3)))
    assert [t.task_id for t in page] == ["t6", "t5", "t4"]
    last = page[-1]
    nxt = run(store.list_tasks(TaskQuery(limit=3, after=(last.created_at, last.task_id))))
    assert [t.task_id for t in nxt] == ["t3", "t2", "t1"]
    in_repo = run(store.list_tasks(TaskQuery(repo="o/r")))
    assert [t.task_id for t in in_repo] == ["t5", "t3", "t1"]
    assert run(store.list_tasks(TaskQuery(state=TaskState.CANCELLED))) == []


def test_list_agents_filters(store: EventStore, run: Runner) -> None:
    run(store.append(registered("pull", caps=("go",))))
    run(store.append(registered("ssh", caps=("rust",), mode=AgentMode.SSH_CLI)))
    by_cap = run(store.list_agents(AgentQuery(capability="rust")))
    assert [a.agent_id for a in by_cap] == ["ssh"]
    by_mode = run(store.list_agents(AgentQuery(mode=AgentMode.HTTP_PULL)))
    assert [a.agent_id for a in by_mode] == ["pull"]
    online = run(store.list_agents(AgentQuery(status=AgentStatus.ONLINE)))
    assert [a.agent_id for a in online] == ["pull", "ssh"]


def test_timeouts_retries_and_stale_agents(store: EventStore, run: Runner) -> None:
    run(store.append(created("slow", timeout=30)))
    run(store.append(created("flaky")))
    events = registered("a", slots=5)
    run(store.append(events))
    agent = agent_of(events)
    run(store.claim_task(agent, PULL, Lease("x"), at(0)))
    run(store.claim_task(agent, PULL, Lease("y"), at(0)))
    assert run(store.timed_out_tasks(at(29), 10)) == []
    assert [t.task_id for t in run(store.timed_out_tasks(at(61), 10))] == ["slow", "flaky"][:2]

    flaky = run(store.get_task(TaskId("flaky")))
    assert flaky is not None
    policy = RetryPolicy(base_delay=timedelta(seconds=10))
    run(store.append(task_model.fail(flaky, FailureReason.ERROR, "x", at(5), "a", policy)))
    assert run(store.retries_due(at(14), 10)) == []
    assert [t.task_id for t in run(store.retries_due(at(15), 10))] == ["flaky"]

    run(store.record_heartbeat(Heartbeat(agent_id=AgentId("a"), at=at(100))))
    assert run(store.last_heartbeat(AgentId("a"))) == at(100)
    assert run(store.stale_agents(at(100), 10)) == []
    assert [a.agent_id for a in run(store.stale_agents(at(101), 10))] == ["a"]


def test_projections_round_trip(store: EventStore, run: Runner) -> None:
    run(store.append(created("t1")))
    run(store.append(registered("a")))
    tasks, agents = run(store.all_projections())
    run(store.replace_projections([], []))
    assert run(store.all_projections()) == ([], [])
    run(store.replace_projections(tasks, agents))
    assert run(store.all_projections()) == (tasks, agents)
