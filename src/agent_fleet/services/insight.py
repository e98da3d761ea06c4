"""Fleet reports from the event log: the one path behind the dashboard's charts and
`agent-fleet report`.

A report over [until - length, until) reads only what that window needs, through the
store port: the ids of tasks with an event in the window or still waiting (an index
range on the events' time), then those tasks' whole histories in chunks (by the
(stream, version) key). Each history is folded with the lifecycle's own `evolve`
into facts (`domain/insight.py`) and counted (`domain/report.py`). Nothing is kept
between reports but a short-lived copy of the latest one per window, so every
replica answers from the shared log, and a restart loses nothing.
"""

import asyncio
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from agent_fleet.domain.budget import AttemptSpend, TaskBudget, spend_by_attempt
from agent_fleet.domain.errors import InvalidInput
from agent_fleet.domain.events import TaskEvent
from agent_fleet.domain.insight import Facts, facts_of
from agent_fleet.domain.report import AgentInfo, FleetReport, build_report
from agent_fleet.domain.task import Task
from agent_fleet.ports.queries import AgentQuery
from agent_fleet.services.commit import load_task
from agent_fleet.services.context import Context

#: Task histories read per query: small enough that decoding one chunk holds the event
#: loop for milliseconds, not seconds.
STREAM_CHUNK = 200
#: How long a report of "the last <length>" is reused: dashboards poll, logs are large.
REUSE_FOR = timedelta(seconds=30)
#: The longest window a report covers.
MAX_LENGTH = timedelta(days=90)
_LENGTH = re.compile(r"^(\d{1,5})([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def window_length(text: str) -> timedelta:
    """A window as people write it: `90m`, `24h`, `7d`, `2w`; from a minute to 90 days."""
    match = _LENGTH.match(text.strip())
    if match is None:
        raise InvalidInput("since", "a number and a unit: m, h, d or w (like 24h or 7d)")
    length = timedelta(**{_UNITS[match[2]]: int(match[1])})
    if not timedelta(minutes=1) <= length <= MAX_LENGTH:
        raise InvalidInput("since", f"between 1m and {MAX_LENGTH.days}d")
    return length


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskSpending:
    task: Task
    attempts: list[AttemptSpend]
    budget: TaskBudget
    #: Why the task's spend has reached its budget; None while within it.
    overrun: str | None


class InsightService:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._latest: dict[timedelta, FleetReport] = {}
        self._computing = asyncio.Lock()

    async def report(self, length: timedelta, until: datetime | None = None) -> FleetReport:
        """The report of the `length` before `until` (default: now, reused for a moment)."""
        length = min(max(length, timedelta(minutes=1)), MAX_LENGTH)
        if until is not None:
            return await self._compute(until - length, until)
        # One computation at a time: a burst of dashboard polls waits for one result.
        async with self._computing:
            now = self._ctx.clock.now()
            latest = self._latest.get(length)
            if latest is not None and timedelta(0) <= now - latest.until < REUSE_FOR:
                return latest
            report = await self._compute(now - length, now)
            self._latest[length] = report
            return report

    async def task_spend(self, task_id: str) -> "TaskSpending":
        """A task with the usage of each of its attempts (its `spend` is their sum), and
        where that stands against the task budget."""
        task = await load_task(self._ctx, task_id)
        history = await self._ctx.store.stream_events(task_id)
        budget = self._ctx.options.retry.budget
        return TaskSpending(
            task=task,
            attempts=spend_by_attempt(r.event for r in history),
            budget=budget,
            overrun=budget.overrun(task.spend),
        )

    async def _compute(self, since: datetime, until: datetime) -> FleetReport:
        store = self._ctx.store
        streams = await store.task_streams_since(since)
        facts = Facts()
        for start in range(0, len(streams), STREAM_CHUNK):
            histories = await store.event_outlines(streams[start : start + STREAM_CHUNK])
            events = [r.event for r in histories if isinstance(r.event, TaskEvent)]
            facts.extend(await asyncio.to_thread(facts_of, events))
        agents: dict[str, AgentInfo] = {
            a.agent_id: AgentInfo(agent_type=a.agent_type, hostname=a.hostname)
            for a in await store.list_agents(AgentQuery())
        }
        # Pure and CPU-bound: off the event loop, which keeps serving agents meanwhile.
        return await asyncio.to_thread(build_report, facts, agents, since, until)
