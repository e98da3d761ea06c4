"""The in-process task signal: one waiter woken per claimable task, never a stampede."""

import asyncio

from agent_fleet.domain.matching import Appetite, Opening
from agent_fleet.domain.states import ExecutionMode
from agent_fleet.store.postgres_signal import PostgresTaskSignal
from agent_fleet.store.signal import AsyncioTaskSignal

PULL = frozenset({ExecutionMode.UNDECIDED, ExecutionMode.HTTP_PULL})
PYTHON = Opening(frozenset({"py"}), ExecutionMode.UNDECIDED)


def appetite(agent_id: str, *caps: str) -> Appetite:
    return Appetite(agent_id, frozenset(caps), PULL)


def test_an_opening_wakes_the_longest_waiting_waiter_that_can_take_it() -> None:
    async def scenario() -> list[bool]:
        signal = AsyncioTaskSignal()
        rusty = signal.line_up(appetite("rusty", "rust"))
        first = signal.line_up(appetite("first", "py", "git"))
        second = signal.line_up(appetite("second", "py"))
        signal.notify(PYTHON)
        woken = [await t.wait(0) for t in (rusty, first, second)]
        for ticket in (rusty, first, second):
            ticket.leave()
        return woken

    assert asyncio.run(scenario()) == [False, True, False]


def test_a_thousand_waiters_that_cannot_take_a_task_are_not_woken() -> None:
    async def scenario() -> tuple[int, int]:
        signal = AsyncioTaskSignal()
        tickets = [signal.line_up(appetite(f"a{n}", "rust")) for n in range(1000)]
        signal.notify(PYTHON)
        woken = sum([await t.wait(0) for t in tickets])
        waiting = signal.waiting
        for ticket in tickets:
            ticket.leave()
        return woken, waiting

    assert asyncio.run(scenario()) == (0, 1000)


def test_a_wake_nobody_answered_passes_to_the_next_in_line_on_leaving() -> None:
    async def scenario() -> list[bool]:
        signal = AsyncioTaskSignal()
        dead = signal.line_up(appetite("dead", "py"))
        alive = signal.line_up(appetite("alive", "py"))
        late = signal.line_up(appetite("late", "py"))
        signal.notify(PYTHON)
        seen = [await dead.wait(0), await alive.wait(0)]
        dead.leave()  # its client hung up: it never looked
        seen.append(await alive.wait(0))
        alive.rejoin(alive.appetite)  # the look (a claim) that answers the wake
        alive.leave()
        seen.append(await late.wait(0))  # an answered wake is not passed on
        late.leave()
        return seen

    assert asyncio.run(scenario()) == [True, False, True, False]


def test_a_look_that_claims_nothing_hands_the_wake_it_cleared_back() -> None:
    """rejoin names the opening it answered: a look that then attempts no claim (it only
    handed a held task again, or found the agent full) gives it to the next in line."""

    async def scenario() -> tuple[Opening | None, Opening | None, bool]:
        signal = AsyncioTaskSignal()
        busy = signal.line_up(appetite("busy", "py"))
        other = signal.line_up(appetite("other", "py"))
        signal.notify(PYTHON)
        assert await busy.wait(0) and not await other.wait(0)
        cleared = busy.rejoin(busy.appetite)
        again = busy.rejoin(busy.appetite)  # nothing new since: nothing to hand back
        signal.notify(cleared)  # what dequeue does when its look claimed nothing
        woken = await other.wait(0)
        busy.leave()
        other.leave()
        return cleared, again, woken

    assert asyncio.run(scenario()) == (PYTHON, None, True)


def test_a_wake_during_a_look_is_kept_for_the_next_look() -> None:
    async def scenario() -> bool:
        signal = AsyncioTaskSignal()
        ticket = signal.line_up(appetite("a", "py"))
        ticket.rejoin(ticket.appetite)  # looking (claiming) ...
        signal.notify(PYTHON)  # ... while a task is created
        woken = await ticket.wait(5)  # so the wait returns at once
        ticket.leave()
        return woken

    assert asyncio.run(scenario())


def test_agent_wakes_reach_only_that_agent_and_watchers_hear_everything() -> None:
    async def scenario() -> tuple[list[bool], bool, bool]:
        signal = AsyncioTaskSignal()
        mine = signal.line_up(appetite("me", "py"))
        other = signal.line_up(appetite("other", "py"))
        watcher = asyncio.ensure_future(signal.wait(5))
        await asyncio.sleep(0)
        signal.wake_agent("me")
        woken = [await mine.wait(0), await other.wait(0)]
        heard = await watcher
        mine.leave()  # a look-again wake carries no task: nothing to pass on
        passed = await other.wait(0)
        other.leave()
        return woken, heard, passed

    assert asyncio.run(scenario()) == ([True, False], True, False)


def test_until_ends_a_wait_without_a_wake() -> None:
    async def scenario() -> bool:
        signal = AsyncioTaskSignal()
        ticket = signal.line_up(appetite("a", "py"))
        gone = asyncio.Event()
        asyncio.get_running_loop().call_later(0.01, gone.set)
        woken = await ticket.wait(30, until=gone)
        ticket.leave()
        return woken

    assert asyncio.run(scenario()) is False


def test_a_replica_acts_on_other_replicas_notices_and_skips_its_own() -> None:
    async def scenario() -> list[bool]:
        signal = PostgresTaskSignal("postgresql://unused", origin="me")
        ticket = signal.line_up(appetite("a", "py"))
        heard = []
        signal.hear('{"o":"me","w":[[["py"],"undecided"]],"a":[]}')
        heard.append(await ticket.wait(0))
        signal.hear('{"o":"peer","w":[[["rust"],"undecided"]],"a":[]}')
        heard.append(await ticket.wait(0))
        signal.hear('{"o":"peer","w":[[["py"],"undecided"]],"a":[]}')
        heard.append(await ticket.wait(0))
        ticket.rejoin(ticket.appetite)
        signal.hear("")  # an older replica's bare NOTIFY: everyone looks again
        heard.append(await ticket.wait(0))
        ticket.leave()
        return heard

    assert asyncio.run(scenario()) == [False, False, True, True]


def test_a_notice_names_what_an_append_changed_and_nothing_else() -> None:
    import json
    from dataclasses import replace
    from datetime import UTC, datetime

    from agent_fleet.domain import task as task_model
    from agent_fleet.domain.ids import AgentId, Lease, TaskId
    from agent_fleet.store.postgres_signal import MAX_PAYLOAD_BYTES, notice

    now = datetime(2026, 1, 1, tzinfo=UTC)
    spec = task_model.NewTask(
        task_id=TaskId("t"), title="t", prompt="p", required_capabilities=("py",),
        max_retries=1, timeout_secs=60,
    )  # fmt: skip
    created = task_model.replay(task_model.create(spec, now, "op"))
    assert created is not None
    assigned = task_model.evolve(
        created, task_model.assign(created, AgentId("a"), None, Lease("L"), now, "a")[0]
    )
    running = task_model.evolve(assigned, task_model.start(assigned, now, "a")[0])
    progressed = task_model.evolve(
        running, task_model.report_progress(running, "half", 50, now, "a")[0]
    )

    def said(before: task_model.Task | None, after: task_model.Task) -> object:
        payload = notice("me", {"t": (before, after)}, {})
        return None if payload is None else json.loads(payload)

    assert said(None, created) == {"o": "me", "w": [[["py"], "undecided"]], "a": []}
    assert said(created, assigned) is None  # a claim wakes nobody
    assert said(running, progressed) is None  # progress neither
    released = task_model.evolve(assigned, task_model.release(assigned, "x", now, "l")[0])
    assert said(assigned, released) == {"o": "me", "w": [[["py"], "undecided"]], "a": ["a"]}
    huge = replace(created, required_capabilities=tuple(f"cap-{n:04}" for n in range(2000)))
    payload = notice("me", {"t": (None, huge)}, {})
    assert payload is not None and len(payload) < MAX_PAYLOAD_BYTES
    assert json.loads(payload) == {"o": "me", "all": True}
