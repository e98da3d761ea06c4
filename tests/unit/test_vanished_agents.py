"""Vanished agents take no work, shown on the services with the in-memory store: the
claim checks the agent, a long-poll ends when its client or agent goes, a claim
made as the client left goes back, and the sweep takes back what an absent agent
holds. The same scenarios over real processes: tests/e2e/test_vanished_agents.py."""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

import pytest

from agent_fleet.domain import agent as agent_model
from agent_fleet.domain import task as task_model
from agent_fleet.domain.agent import Agent
from agent_fleet.domain.errors import AgentNotFound, InvalidTransition
from agent_fleet.domain.events import TaskAgentLost, TaskReleased, TaskRetried
from agent_fleet.domain.ids import AgentId, Lease, TaskId
from agent_fleet.domain.policies import RetryPolicy
from agent_fleet.domain.states import TaskState
from agent_fleet.domain.task import Task
from agent_fleet.ports.store import Take
from agent_fleet.services.agents import RegisterAgent
from agent_fleet.services.context import Context, FleetOptions
from agent_fleet.services.dequeue import Handout
from agent_fleet.services.fleet import Fleet
from agent_fleet.services.tasks import CreateTask
from agent_fleet.store.signal import AsyncioTaskSignal
from agent_fleet.testing import InMemoryEventStore, ManualClock

T = TypeVar("T")
POLICY = RetryPolicy(base_delay=timedelta(0), max_delay=timedelta(0))
WAIT = timedelta(seconds=30)


class CountingStore(InMemoryEventStore):
    """Counts claim attempts: what a stampede of woken long-polls costs."""

    claims = 0

    async def claim_task(self, agent: Agent, *args: Any) -> Task | None:
        self.claims += 1
        return await super().claim_task(agent, *args)

    async def take_task(self, agent: Agent, *args: Any) -> Take:
        """A pull agent's look: a claim attempt (its held-task check rides along)."""
        self.claims += 1
        return await super().take_task(agent, *args)


def fleet() -> tuple[Fleet, CountingStore, AsyncioTaskSignal, ManualClock]:
    store, signal, clock = CountingStore(), AsyncioTaskSignal(), ManualClock()
    options = FleetOptions(
        retry=POLICY, heartbeat_interval=timedelta(seconds=10), long_poll_max=WAIT
    )
    ctx = Context(store=store, clock=clock, signal=signal, options=options)
    return Fleet.assemble(ctx), store, signal, clock


async def register(f: Fleet, agent_id: str, *caps: str, slots: int = 1) -> None:
    await f.agents.register(
        RegisterAgent(
            agent_id=agent_id,
            agent_type="t",
            hostname=None,
            capabilities=caps,
            max_concurrency=slots,
        )
    )


async def create(f: Fleet, *caps: str) -> str:
    task = await f.tasks.create(CreateTask(title="t", prompt="p", required_capabilities=caps))
    return task.task_id


async def until(check: Callable[[], bool], what: str) -> None:
    """Let the other tasks run until `check` holds (bounded: a hang fails, naming `what`)."""
    for _ in range(10_000):
        if check():
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"timed out waiting for {what}")


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(scenario())


def test_released_and_taken_back_decisions() -> None:
    spec = task_model.NewTask(
        task_id=TaskId("t"), title="t", prompt="p", required_capabilities=(), max_retries=1,
        timeout_secs=60,
    )  # fmt: skip
    created = task_model.replay(task_model.create(spec, ManualClock().now(), "op"))
    assert created is not None
    now = ManualClock().now()
    assigned = task_model.replay(
        [*task_model.create(spec, now, "op"),
         *task_model.assign(created, AgentId("a"), None, Lease("L"), now, "a")]
    )  # fmt: skip
    assert assigned is not None
    released = task_model.release(assigned, "gone", now, "loop")
    assert isinstance(released[0], TaskReleased) and released[0].agent_id == "a"
    back = task_model.evolve(assigned, released[0])
    assert (back.state, back.agent_id, back.lease, back.assigned_at, back.attempt) == (
        TaskState.CREATED, None, None, None, 0,
    )  # fmt: skip
    with pytest.raises(InvalidTransition):
        task_model.release(back, "twice", now, "loop")

    started = task_model.evolve(assigned, task_model.start(assigned, now, "a")[0])
    lost = task_model.take_back(started, "gone", now, "loop", POLICY)
    assert isinstance(lost[0], TaskAgentLost)  # work was done: that attempt counts
    on_host = task_model.evolve(
        created, task_model.assign(created, AgentId("h/x"), "h", Lease("L"), now, "d")[0]
    )
    assert isinstance(task_model.take_back(on_host, "gone", now, "loop", POLICY)[0], TaskAgentLost)
    assert isinstance(task_model.take_back(assigned, "gone", now, "loop", POLICY)[0], TaskReleased)


def test_a_task_created_with_many_idle_long_polls_costs_one_claim() -> None:
    """Issue 14, finding 5: every new task used to wake every waiting long-poll."""

    async def scenario() -> tuple[int, int, bool]:
        f, store, signal, _ = fleet()
        for n in range(200):
            await register(f, f"rust-{n}", "rust")
        await register(f, "python", "py")
        polls = [
            asyncio.create_task(f.dequeue.dequeue(await f.agents.get(f"rust-{n}"), None, WAIT))
            for n in range(200)
        ]
        polls.append(
            asyncio.create_task(f.dequeue.dequeue(await f.agents.get("python"), None, WAIT))
        )
        await until(lambda: signal.waiting == 201, "every poll in line")
        before = store.claims
        await create(f, "go")  # nobody can take it
        await asyncio.sleep(0.01)
        claims_for_none = store.claims - before
        task_id = await create(f, "py")  # one can
        handout = await polls[-1]
        claims_for_one = store.claims - before - claims_for_none
        f.dequeue.close()
        await asyncio.gather(*polls)
        return (
            claims_for_none,
            claims_for_one,
            handout is not None and handout.task.task_id == task_id,
        )

    assert run(scenario) == (0, 1, True)


def test_a_long_poll_whose_client_left_takes_nothing_and_passes_its_wake_on() -> None:
    async def scenario() -> tuple[Handout | None, bool, list[str]]:
        f, store, signal, _ = fleet()
        await register(f, "dead")
        await register(f, "alive")
        gone = asyncio.Event()
        dead = asyncio.create_task(f.dequeue.dequeue(await f.agents.get("dead"), None, WAIT, gone))
        await until(lambda: signal.waiting == 1, "the dead agent's poll in line")
        alive = asyncio.create_task(f.dequeue.dequeue(await f.agents.get("alive"), None, WAIT))
        await until(lambda: signal.waiting == 2, "both in line")
        gone.set()  # the client hung up; its poll leaves the line at once
        from_dead = await dead
        task_id = await create(f)
        handout = await alive
        actors = [r.event.actor for r in await store.stream_events(task_id)]
        return from_dead, handout is not None and handout.task.task_id == task_id, actors

    from_dead, alive_took_it, actors = run(scenario)
    assert from_dead is None and alive_took_it
    assert actors == ["operator", "alive"]


def test_a_claim_made_as_the_client_left_goes_straight_back() -> None:
    async def scenario() -> tuple[Any, list[str], TaskState]:
        f, store, _, _ = fleet()
        await register(f, "a")
        task_id = await create(f)
        gone = asyncio.Event()
        gone_after_claim = GoneAfterClaim(store, gone)
        f.ctx.store.take_task = gone_after_claim  # type: ignore[method-assign]
        handout = await f.dequeue.dequeue(await f.agents.get("a"), None, WAIT, gone)
        names = [type(r.event).__name__ for r in await store.stream_events(task_id)]
        return handout, names, (await f.tasks.get(task_id)).state

    handout, names, state = run(scenario)
    assert handout is None
    assert names == ["TaskCreated", "TaskAssigned", "TaskReleased"]
    assert state is TaskState.CREATED


class GoneAfterClaim:
    """The client disconnects while its claim is being committed."""

    def __init__(self, store: InMemoryEventStore, gone: asyncio.Event) -> None:
        self._take = store.take_task
        self._gone = gone

    async def __call__(self, *args: Any) -> Take:
        take = await self._take(*args)
        self._gone.set()
        return take


def test_deregistering_ends_the_agents_open_long_poll_without_a_claim() -> None:
    async def scenario() -> tuple[type[BaseException] | None, int, TaskState]:
        f, _, signal, _ = fleet()
        await register(f, "leaving")
        poll = asyncio.create_task(f.dequeue.dequeue(await f.agents.get("leaving"), None, WAIT))
        await until(lambda: signal.waiting == 1, "the poll in line")
        await f.agents.deregister(await f.agents.get("leaving"))
        try:
            await poll
            raised: type[BaseException] | None = None
        except AgentNotFound as e:
            raised = type(e)
        task_id = await create(f)
        return raised, signal.waiting, (await f.tasks.get(task_id)).state

    assert run(scenario) == (AgentNotFound, 0, TaskState.CREATED)


def test_the_sweep_takes_back_what_an_absent_agent_holds() -> None:
    async def scenario() -> tuple[list[str], list[str], int]:
        f, store, _, clock = fleet()
        await register(f, "a", slots=2)
        first = await create(f)
        got = await f.dequeue.dequeue(await f.agents.get("a"), None, timedelta(0))
        assert got is not None and got.task.task_id == first
        await f.tasks.report_status(first, "a", got.lease, TaskState.RUNNING, None, None)
        second = await create(f)
        assert await f.dequeue.dequeue(await f.agents.get("a"), None, timedelta(0)) is not None
        # It went offline in a way that left its tasks held (a release that failed).
        agent = await f.agents.get("a")
        await store.append(agent_model.go_offline(agent, "x", clock.now(), "test"))
        assert await f.sweeper.release_orphans() == 2
        assert await f.sweeper.release_orphans() == 0
        kinds = [
            [type(r.event).__name__ for r in await store.stream_events(t)][2:]
            for t in (first, second)
        ]
        lost_then = (await f.tasks.get(first)).attempt
        return kinds[0], kinds[1], lost_then

    started, unstarted, attempt = run(scenario)
    assert started == ["TaskStarted", "TaskAgentLost", TaskRetried.__name__]
    assert unstarted == ["TaskReleased"]
    assert attempt == 1
