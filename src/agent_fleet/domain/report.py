"""A fleet report: the facts of one time window, counted once for the dashboard's charts
and for `agent-fleet report` alike (pure).

Counts are of outcomes, not of tasks: a task that failed twice and then completed adds
two failures and one completion. A fact belongs to the window when its moment is in
[since, until). Durations are seconds; quantiles are nearest-rank.

Just over 300 lines: the report's shape and its one counting pass belong together.
"""

from bisect import bisect_right
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from math import fsum
from typing import TypeVar

from agent_fleet.domain.budget import day_start
from agent_fleet.domain.insight import Charged, Ended, Facts, Queued, Ran, Waited
from agent_fleet.domain.stats import DAY, Quantiles, bucket_size, bucket_starts, ratio

#: Rows per breakdown; the rest are summed into one `(other)` row.
MAX_ROWS = 20
OTHER = "(other)"
UNKNOWN = "(unknown)"
NO_REPO = "(none)"


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentInfo:
    """What a report needs to know of an agent id."""

    agent_type: str
    hostname: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Bucket:
    start: datetime
    #: Tasks waiting in `created` at the bucket's end (at `until` for the last one).
    queue_depth: int
    #: From entering the queue to assignment, for the assignments in this bucket.
    wait: Quantiles
    completed: int
    #: Failures (agent_lost included) by reason.
    failed: dict[str, int]
    tokens: int
    cost_usd: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Breakdown:
    name: str
    #: Assignments (attempts) in the window.
    tasks: int
    completed: int
    failed: int
    success_rate: float | None
    median_run_secs: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class SpendRow:
    name: str
    tokens: int
    cost_usd: float


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetReport:
    since: datetime
    until: datetime
    bucket_secs: int
    tasks_created: int
    attempts: int
    completed: int
    failed: int
    cancelled: int
    success_rate: float | None
    wait: Quantiles
    run: Quantiles
    failures: dict[str, int]
    queue_depth: int
    buckets: tuple[Bucket, ...]
    by_agent_type: tuple[Breakdown, ...]
    by_host: tuple[Breakdown, ...]
    spend: SpendRow
    spend_by_day: tuple[SpendRow, ...]
    spend_by_repo: tuple[SpendRow, ...]
    spend_by_agent_type: tuple[SpendRow, ...]


def build_report(
    facts: Facts, agents: Mapping[str, AgentInfo], since: datetime, until: datetime
) -> FleetReport:
    inside = _Window(since, until)
    waited = [f for f in facts.waited if inside(f.at)]
    ran = [f for f in facts.ran if inside(f.at)]
    ended = [f for f in facts.ended if inside(f.at)]
    charged = [f for f in facts.charged if inside(f.at)]
    completed = sum(1 for e in ended if e.outcome == "completed")
    failures = Counter(e.reason or UNKNOWN for e in ended if e.outcome == "failed")
    failed = sum(failures.values())
    size = bucket_size(until - since)

    def agent_type(agent_id: str | None) -> str:
        info = agents.get(agent_id) if agent_id else None
        return info.agent_type if info else UNKNOWN

    def host(agent_id: str | None, host_id: str | None) -> str:
        info = agents.get(agent_id) if agent_id else None
        return host_id or (info.hostname if info else None) or UNKNOWN

    return FleetReport(
        since=since,
        until=until,
        bucket_secs=int(size.total_seconds()),
        tasks_created=sum(1 for at in facts.created if inside(at)),
        attempts=len(waited),
        completed=completed,
        failed=failed,
        cancelled=sum(1 for e in ended if e.outcome == "cancelled"),
        success_rate=ratio(completed, completed + failed),
        wait=Quantiles.of([f.seconds for f in waited]),
        run=Quantiles.of([f.seconds for f in ran]),
        failures=dict(failures.most_common()),
        queue_depth=_Depth(facts.queued).at(until),
        buckets=_buckets(facts, size, since, until),
        by_agent_type=_breakdown(waited, ran, ended, lambda agent, _host: agent_type(agent)),
        by_host=_breakdown(waited, ran, ended, host),
        spend=SpendRow(
            name="total",
            tokens=sum(c.tokens for c in charged),
            cost_usd=fsum(c.cost_usd for c in charged),
        ),
        spend_by_day=_spend_by_day(charged, since, until),
        spend_by_repo=_spend_rows(charged, lambda c: c.repo or NO_REPO),
        spend_by_agent_type=_spend_rows(charged, lambda c: agent_type(c.agent_id)),
    )


class _Window:
    def __init__(self, since: datetime, until: datetime) -> None:
        self.since, self.until = since, until

    def __call__(self, at: datetime) -> bool:
        return self.since <= at < self.until


class _Depth:
    """How many tasks waited at a moment: stretches begun by then, less those ended."""

    def __init__(self, queued: Iterable[Queued]) -> None:
        stretches = list(queued)
        self._entered = sorted(q.entered for q in stretches)
        self._left = sorted(q.left for q in stretches if q.left is not None)

    def at(self, moment: datetime) -> int:
        return bisect_right(self._entered, moment) - bisect_right(self._left, moment)


def _buckets(facts: Facts, size: timedelta, since: datetime, until: datetime) -> tuple[Bucket, ...]:
    starts = bucket_starts(since, until, size)
    inside = _Window(since, until)

    def index(at: datetime) -> int:
        return (at - starts[0]) // size

    waits: list[list[float]] = [[] for _ in starts]
    completed, tokens = [0] * len(starts), [0] * len(starts)
    costs: list[list[float]] = [[] for _ in starts]
    failed: list[Counter[str]] = [Counter() for _ in starts]
    for w in facts.waited:
        if inside(w.at):
            waits[index(w.at)].append(w.seconds)
    for e in facts.ended:
        if inside(e.at) and e.outcome == "completed":
            completed[index(e.at)] += 1
        elif inside(e.at) and e.outcome == "failed":
            failed[index(e.at)][e.reason or UNKNOWN] += 1
    for c in facts.charged:
        if inside(c.at):
            tokens[index(c.at)] += c.tokens
            costs[index(c.at)].append(c.cost_usd)
    depth = _Depth(facts.queued)
    return tuple(
        Bucket(
            start=start,
            queue_depth=depth.at(min(start + size, until)),
            wait=Quantiles.of(waits[n]),
            completed=completed[n],
            failed=dict(failed[n].most_common()),
            tokens=tokens[n],
            cost_usd=fsum(costs[n]),
        )
        for n, start in enumerate(starts)
    )


@dataclass(slots=True)
class _Tally:
    tasks: int = 0
    completed: int = 0
    failed: int = 0
    runs: list[float] = field(default_factory=list)

    def add(self, other: "_Tally") -> None:
        self.tasks += other.tasks
        self.completed += other.completed
        self.failed += other.failed
        self.runs += other.runs

    @property
    def weight(self) -> int:
        return self.tasks + self.completed + self.failed


Key = Callable[[str | None, str | None], str]


def _breakdown(
    waited: list[Waited], ran: list[Ran], ended: list[Ended], key: Key
) -> tuple[Breakdown, ...]:
    tallies: dict[str, _Tally] = defaultdict(_Tally)
    for w in waited:
        tallies[key(w.agent_id, w.host_id)].tasks += 1
    for e in ended:
        if e.outcome == "completed":
            tallies[key(e.agent_id, e.host_id)].completed += 1
        elif e.outcome == "failed":
            tallies[key(e.agent_id, e.host_id)].failed += 1
    for r in ran:
        tallies[key(r.agent_id, r.host_id)].runs.append(r.seconds)
    rows = []
    for name, tally in _top(tallies, lambda t: (t.weight,), _Tally.add, _Tally):
        rows.append(
            Breakdown(
                name=name,
                tasks=tally.tasks,
                completed=tally.completed,
                failed=tally.failed,
                success_rate=ratio(tally.completed, tally.completed + tally.failed),
                median_run_secs=Quantiles.of(tally.runs).p50,
            )
        )
    return tuple(rows)


def _spend_rows(charged: list[Charged], key: Callable[[Charged], str]) -> tuple[SpendRow, ...]:
    grouped: dict[str, list[Charged]] = defaultdict(list)
    for c in charged:
        grouped[key(c)].append(c)
    totals = {name: _total(name, items) for name, items in grouped.items()}

    def merge(into: SpendRow, row: SpendRow) -> SpendRow:
        return SpendRow(
            name=OTHER,
            tokens=into.tokens + row.tokens,
            cost_usd=fsum((into.cost_usd, row.cost_usd)),
        )

    top = _top(
        totals,
        lambda r: (r.cost_usd, r.tokens),
        merge,
        lambda: SpendRow(name=OTHER, tokens=0, cost_usd=0.0),
    )
    return tuple(replace(row, name=name) for name, row in top)


def _total(name: str, items: list[Charged]) -> SpendRow:
    # fsum: the same total whatever order the histories were read in.
    return SpendRow(
        name=name, tokens=sum(c.tokens for c in items), cost_usd=fsum(c.cost_usd for c in items)
    )


def _spend_by_day(charged: list[Charged], since: datetime, until: datetime) -> tuple[SpendRow, ...]:
    days = bucket_starts(day_start(since), until, DAY)
    by_day: list[list[Charged]] = [[] for _ in days]
    for c in charged:
        by_day[(c.at - days[0]) // DAY].append(c)
    return tuple(_total(day.date().isoformat(), by_day[n]) for n, day in enumerate(days))


T = TypeVar("T")


def _top(
    rows: Mapping[str, T],
    weight: Callable[[T], tuple[float, ...]],
    merge: Callable[[T, T], T | None],
    empty: Callable[[], T],
) -> list[tuple[str, T]]:
    """The heaviest rows first (ties by name); past MAX_ROWS, one `(other)` row sums the rest.

    `merge(into, row)` either adds `row` into `into` in place (returning None) or returns
    the sum."""
    ordered = sorted(rows.items(), key=lambda kv: (*(-w for w in weight(kv[1])), kv[0]))
    if len(ordered) <= MAX_ROWS:
        return ordered
    keep, rest = ordered[: MAX_ROWS - 1], ordered[MAX_ROWS - 1 :]
    other = empty()
    for _, row in rest:
        summed = merge(other, row)
        other = summed if summed is not None else other
    return [*keep, (OTHER, other)]
