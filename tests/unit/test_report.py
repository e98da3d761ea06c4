"""The fleet report counted by hand: five task histories in one hour, and every number the
charts and `agent-fleet report` show for that hour worked out below from the timeline.

    09:00 D created            10:30 B assigned again (a1, waited 600 s); A's PR merged
    10:00 A created            10:40 C created (still waiting at 11:00)
    10:01 D assigned (a1)      10:45 B times out (run 900 s; no retry left)
    10:02 A assigned (a1)      10:50 E created
    10:05 B created            10:55 E cancelled
    10:06 B assigned (h1/codex on host-9)
    10:12 A: receipt with a PR, review pending (run 600 s; 1000 tokens, $0.10)
    10:20 B fails `error` (run 840 s; 3000 tokens, $0.50), retried at once
    10:21 D completes (run 1200 s; 2000 tokens, $0.20)
"""

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest

from agent_fleet.domain import holds
from agent_fleet.domain import task as t
from agent_fleet.domain.budget import Spend
from agent_fleet.domain.events import TaskEvent
from agent_fleet.domain.ids import AgentId, Lease, TaskId
from agent_fleet.domain.insight import facts_of, state_after
from agent_fleet.domain.policies import RetryPolicy
from agent_fleet.domain.report import MAX_ROWS, OTHER, AgentInfo, build_report
from agent_fleet.domain.states import FailureReason, PrState, ReceiptStatus
from agent_fleet.domain.stats import DAY, FIVE_MINUTES, HOUR, Quantiles, bucket_size, nearest_rank
from agent_fleet.domain.values import Artifact, PullRequest, Receipt, Source, Usage

DAY0 = datetime(2026, 1, 1, tzinfo=UTC)
NO_BACKOFF = RetryPolicy(base_delay=timedelta(0), max_delay=timedelta(0))
AGENTS = {
    "a1": AgentInfo(agent_type="claude", hostname="box-1"),
    "h1/codex": AgentInfo(agent_type="codex", hostname="host-9.internal"),
}


def at(hhmm: str) -> datetime:
    hours, minutes = hhmm.split(":")
    return DAY0 + timedelta(hours=int(hours), minutes=int(minutes))


@dataclass
class History:
    """One task driven through the real decisions, its events kept in order."""

    task_id: str
    events: list[TaskEvent] = field(default_factory=list)
    task: t.Task | None = None

    def apply(self, events: list[TaskEvent]) -> "History":
        for event in events:
            self.task = t.evolve(self.task, event)
        self.events += events
        return self

    @property
    def now(self) -> t.Task:
        assert self.task is not None
        return self.task

    def create(self, when: str, repo: str | None, max_retries: int = 2) -> "History":
        spec = t.NewTask(
            task_id=TaskId(self.task_id),
            title=self.task_id,
            prompt="p",
            required_capabilities=(),
            max_retries=max_retries,
            timeout_secs=3600,
            source=Source(repo=repo),
        )
        return self.apply(t.create(spec, at(when), "op"))

    def assign(self, when: str, agent: str, host: str | None = None) -> "History":
        return self.apply(t.assign(self.now, AgentId(agent), host, Lease("L"), at(when), agent))

    def receipt(
        self, when: str, status: ReceiptStatus, tokens: int, usd: float, pr: bool = False
    ) -> "History":
        agent = self.now.agent_id
        assert agent is not None
        done = Receipt(
            task_id=TaskId(self.task_id),
            agent_id=agent,
            status=status,
            artifacts=(Artifact(type="pr", url="https://f.example/o/r/pulls/1"),) if pr else (),
            usage=Usage(tokens=tokens, cost_usd=usd),
        )
        return self.apply(t.accept_receipt(self.now, done, at(when), agent, NO_BACKOFF))


def the_hour() -> list[TaskEvent]:
    d = History("D").create("09:00", "acme/widgets").assign("10:01", "a1")
    a = History("A").create("10:00", "acme/widgets").assign("10:02", "a1")
    b = History("B").create("10:05", "acme/gadgets", max_retries=1)
    b.assign("10:06", "h1/codex", host="host-9")
    a.receipt("10:12", ReceiptStatus.COMPLETED, 1000, 0.10, pr=True)
    b.receipt("10:20", ReceiptStatus.FAILED, 3000, 0.50)
    b.apply(t.retry(b.now, at("10:20"), "policy:auto-retry", manual=False))
    d.receipt("10:21", ReceiptStatus.COMPLETED, 2000, 0.20)
    b.assign("10:30", "a1")
    merged = PullRequest(url="https://f.example/o/r/pulls/1", number=1, state=PrState.MERGED)
    a.apply(t.update_pr(a.now, merged, at("10:30"), "webhook", NO_BACKOFF))
    c = History("C").create("10:40", None)
    b.apply(t.fail(b.now, FailureReason.TIMEOUT, "slow", at("10:45"), "loop", NO_BACKOFF))
    e = History("E").create("10:50", None)
    e.apply(t.cancel(e.now, "not needed", at("10:55"), "op"))
    # Streams interleave in the log; the facts do not depend on it.
    return [*d.events, *a.events, *b.events, *c.events, *e.events]


def test_the_hour_counted_by_hand() -> None:
    report = build_report(facts_of(the_hour()), AGENTS, at("10:00"), at("11:00"))
    assert report.bucket_secs == 300
    assert (report.tasks_created, report.attempts) == (4, 4)  # D was created before 10:00
    assert (report.completed, report.failed, report.cancelled) == (2, 2, 1)
    assert report.success_rate == 0.5
    assert report.failures == {"error": 1, "timeout": 1}
    # Waits 60, 120, 600, 3660 s: the median is the 2nd of 4, p95 the 4th.
    assert report.wait == Quantiles(count=4, p50=120.0, p95=3660.0)
    # Runs 600, 840, 900, 1200 s.
    assert report.run == Quantiles(count=4, p50=840.0, p95=1200.0)
    assert report.queue_depth == 1  # C


def test_the_hours_buckets_counted_by_hand() -> None:
    report = build_report(facts_of(the_hour()), AGENTS, at("10:00"), at("11:00"))
    buckets = report.buckets
    assert [b.start for b in buckets] == [at("10:00") + FIVE_MINUTES * n for n in range(12)]
    # Waiting at each bucket's end: B at 10:05 (assigned 10:06), B again 10:20-10:30,
    # C from 10:40, E 10:50-10:55.
    assert [b.queue_depth for b in buckets] == [1, 0, 0, 1, 1, 0, 0, 1, 1, 2, 1, 1]
    assert buckets[0].wait == Quantiles(count=2, p50=120.0, p95=3660.0)  # A and D
    assert buckets[1].wait == Quantiles(count=1, p50=60.0, p95=60.0)  # B
    assert buckets[6].wait == Quantiles(count=1, p50=600.0, p95=600.0)  # B again
    assert [b.completed for b in buckets] == [0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0]
    assert [b.failed for b in buckets] == [
        {}, {}, {}, {}, {"error": 1}, {}, {}, {}, {}, {"timeout": 1}, {}, {},
    ]  # fmt: skip
    assert [b.tokens for b in buckets] == [0, 0, 1000, 0, 5000, 0, 0, 0, 0, 0, 0, 0]
    assert buckets[4].cost_usd == pytest.approx(0.70)


def test_the_hour_by_agent_type_and_host() -> None:
    report = build_report(facts_of(the_hour()), AGENTS, at("10:00"), at("11:00"))
    claude, codex = report.by_agent_type
    # a1 took D, A and B's second attempt; completed D and A; B timed out on it.
    assert (claude.name, claude.tasks, claude.completed, claude.failed) == ("claude", 3, 2, 1)
    assert claude.success_rate == pytest.approx(2 / 3)
    assert claude.median_run_secs == 900.0  # of 600, 900, 1200
    assert (codex.name, codex.tasks, codex.completed, codex.failed) == ("codex", 1, 0, 1)
    assert (codex.success_rate, codex.median_run_secs) == (0.0, 840.0)
    # Hosts: an ssh_cli run's host id, else the pull agent's hostname.
    assert [(h.name, h.tasks) for h in report.by_host] == [("box-1", 3), ("host-9", 1)]


def test_the_hours_spend() -> None:
    report = build_report(facts_of(the_hour()), AGENTS, at("10:00"), at("11:00"))
    assert report.spend.tokens == 6000
    assert report.spend.cost_usd == pytest.approx(0.80)
    assert [(r.name, r.tokens) for r in report.spend_by_repo] == [
        ("acme/gadgets", 3000),  # $0.50 ranks above acme/widgets' $0.30
        ("acme/widgets", 3000),
    ]
    assert [r.cost_usd for r in report.spend_by_repo] == pytest.approx([0.50, 0.30])
    assert [(r.name, r.tokens) for r in report.spend_by_agent_type] == [
        ("codex", 3000),
        ("claude", 3000),
    ]
    assert [(r.name, r.tokens) for r in report.spend_by_day] == [("2026-01-01", 6000)]


def test_a_narrower_window_sees_only_its_facts() -> None:
    report = build_report(facts_of(the_hour()), AGENTS, at("10:15"), at("10:25"))
    assert (report.tasks_created, report.attempts, report.completed, report.failed) == (0, 0, 1, 1)
    assert report.spend.tokens == 5000  # B's and D's receipts
    assert [b.queue_depth for b in report.buckets] == [1, 1]  # B waits at 10:20 and 10:25


def test_an_empty_window_has_buckets_and_no_numbers() -> None:
    report = build_report(facts_of([]), {}, at("10:00"), at("11:00"))
    assert len(report.buckets) == 12 and report.queue_depth == 0
    assert report.success_rate is None and report.wait == Quantiles(count=0, p50=None, p95=None)
    assert report.by_agent_type == () and report.spend_by_repo == ()
    assert [(r.name, r.tokens) for r in report.spend_by_day] == [("2026-01-01", 0)]


def test_past_twenty_rows_the_rest_are_one_other_row() -> None:
    events: list[TaskEvent] = []
    for n in range(25):
        h = History(f"t{n}").create("10:00", f"org/repo-{n:02d}").assign("10:01", "a1")
        events += h.receipt("10:02", ReceiptStatus.COMPLETED, 1, float(n + 1)).events
    report = build_report(facts_of(events), AGENTS, at("10:00"), at("11:00"))
    rows = report.spend_by_repo
    assert len(rows) == MAX_ROWS
    assert [r.name for r in rows[:3]] == ["org/repo-24", "org/repo-23", "org/repo-22"]
    assert rows[-1].name == OTHER
    assert rows[-1].cost_usd == sum(range(1, 7))  # the six cheapest: $1 … $6
    assert sum(r.tokens for r in rows) == 25


def test_nearest_rank_and_bucket_sizes() -> None:
    assert nearest_rank([1, 2, 3, 4], 50) == 2
    assert nearest_rank([1, 2, 3, 4], 95) == 4
    assert nearest_rank([5], 95) == 5
    assert nearest_rank([], 50) is None
    assert [nearest_rank(list(range(1, 101)), p) for p in (50, 95)] == [50, 95]
    assert bucket_size(timedelta(hours=1)) == FIVE_MINUTES
    assert bucket_size(timedelta(hours=24)) == HOUR
    assert bucket_size(timedelta(days=7)) == DAY


def test_facts_read_states_as_the_lifecycle_folds_them() -> None:
    """`state_after` (the facts' light fold) says what `task.evolve` says, event by event."""
    odd = History("odd").create("10:00", "acme/widgets").assign("10:01", "a1")
    odd.apply(t.reroute(odd.now, ("x",), 5, at("10:02"), "webhook"))
    odd.apply(holds.hold_for_budget(odd.now, Spend(cost_usd=9), 1.0, at("10:03"), "op"))
    odd.apply(holds.release(odd.now, at("10:04"), "op", manual=True))
    odd.assign("10:05", "a1").apply(t.start(odd.now, at("10:06"), "a1"))
    odd.apply(t.report_progress(odd.now, "half", 0.5, at("10:07"), "a1"))
    odd.apply(t.lose(odd.now, "silent", at("10:08"), "loop", NO_BACKOFF))
    odd.apply(t.retry(odd.now, at("10:09"), "op", manual=True))
    odd.assign("10:10", "a1").receipt("10:11", ReceiptStatus.COMPLETED, 1, 0.0, pr=True)
    opened = PullRequest(url="https://f.example/o/r/pulls/1", number=1, state=PrState.OPEN)
    odd.apply(t.update_pr(odd.now, replace(opened, number=2), at("10:12"), "webhook", NO_BACKOFF))
    odd.apply(t.cancel(odd.now, "enough", at("10:13"), "op"))
    task: t.Task | None = None
    for event in [*the_hour(), *odd.events]:
        before = task.state if task is not None and task.task_id == event.stream_id else None
        task = t.evolve(task if before is not None else None, event)
        if before is not None:
            assert state_after(before, event) is task.state, event
    facts = facts_of(odd.events)
    assert [e.outcome for e in facts.ended] == ["failed", "cancelled"]
    # Waited 10:00-10:01, from the re-route 10:02 to 10:05 (held meanwhile), 10:09-10:10.
    assert [w.seconds for w in facts.waited] == [60, 180, 60]
    assert all(q.left is not None for q in facts.queued) and len(facts.queued) == 3
