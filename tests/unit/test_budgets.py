"""Spend and budgets in the domain: what a task spent across attempts, the per-task budget
that ends retries (`budget_exceeded`), and the daily repository budget's holds."""

import math
from datetime import UTC, datetime, timedelta

import pytest

from agent_fleet.domain import holds
from agent_fleet.domain import task as t
from agent_fleet.domain.budget import (
    DailyBudgets,
    Spend,
    TaskBudget,
    day_start,
    next_day,
    spend_by_attempt,
    usage_tokens,
)
from agent_fleet.domain.errors import InvalidTransition
from agent_fleet.domain.events import TaskAgentLost, TaskFailed, TaskHeld, TaskHoldLifted
from agent_fleet.domain.ids import AgentId, Lease, TaskId
from agent_fleet.domain.policies import RetryPolicy
from agent_fleet.domain.states import FailureReason, PrState, ReceiptStatus, TaskState
from agent_fleet.domain.values import Artifact, PullRequest, Receipt, Source, Usage

T0 = datetime(2026, 3, 14, 22, 30, tzinfo=UTC)
A = AgentId("agent-a")
BUDGET = TaskBudget(max_cost_usd=1.0, max_tokens=10_000)
POLICY = RetryPolicy(base_delay=timedelta(seconds=10), budget=BUDGET)


def fold(task: t.Task | None, events: list[t.TaskEvent]) -> t.Task:
    for event in events:
        task = t.evolve(task, event)
    assert task is not None
    return task


def new(max_retries: int = 5, repo: str | None = "acme/widgets") -> t.Task:
    spec = t.NewTask(
        task_id=TaskId("t1"),
        title="x",
        prompt="p",
        required_capabilities=(),
        max_retries=max_retries,
        timeout_secs=60,
        source=Source(kind="forgejo", repo=repo, issue_number=7),
    )
    return fold(None, t.create(spec, T0, "op"))


def assigned(task: t.Task, lease: str = "L") -> t.Task:
    return fold(task, t.assign(task, A, "host-1", Lease(lease), T0, "a"))


def receipt(
    status: ReceiptStatus, cost: float | None, tokens: int | None = None, pr: bool = False
) -> Receipt:
    return Receipt(
        task_id=TaskId("t1"),
        agent_id=A,
        status=status,
        error="tests fail" if status is ReceiptStatus.FAILED else None,
        artifacts=(Artifact(type="pr", url="https://f.example/o/r/pulls/3"),) if pr else (),
        usage=Usage(tokens=tokens, cost_usd=cost),
    )


def attempt(task: t.Task, cost: float | None, tokens: int | None = None) -> t.Task:
    """One more attempt that fails with a receipt reporting this usage, then its retry."""
    held = assigned(task)
    failed = fold(
        held, t.accept_receipt(held, receipt(ReceiptStatus.FAILED, cost, tokens), T0, "a", POLICY)
    )
    if failed.retry_at is None:
        return failed
    return fold(failed, t.retry(failed, T0, "loop", manual=False))


# --- spend ------------------------------------------------------------------------


def test_usage_counts_its_total_else_input_plus_output() -> None:
    assert usage_tokens(Usage(tokens=90, input_tokens=50, output_tokens=30)) == 90
    assert usage_tokens(Usage(input_tokens=50, output_tokens=30, cache_read_tokens=999)) == 80
    assert usage_tokens(Usage(output_tokens=30)) == 30
    assert usage_tokens(Usage(cost_usd=0.1)) is None


def test_spend_ignores_what_cannot_be_money() -> None:
    spend = Spend().plus(Usage(tokens=-5, cost_usd=-1.0)).plus(Usage(cost_usd=math.nan))
    assert spend == Spend()
    assert Spend().plus(Usage(tokens=7, cost_usd=math.inf)) == Spend(tokens=7, cost_usd=0.0)
    assert Spend().plus(None) == Spend()


def test_spend_adds_up_across_attempts_and_survives_retries() -> None:
    task = attempt(new(), 0.25, 1000)
    task = attempt(task, None, 500)  # no price reported: tokens still count
    task = attempt(task, 0.5, None)
    assert task.state is TaskState.CREATED and task.attempt == 3
    assert task.spend == Spend(tokens=1500, cost_usd=0.75)
    assert task.receipt is None  # the attempt's receipt goes, its spend stays


def test_a_review_pending_receipt_counts_once_through_the_merge() -> None:
    held = assigned(new())
    review = fold(
        held,
        t.accept_receipt(
            held, receipt(ReceiptStatus.COMPLETED, 0.3, 300, pr=True), T0, "a", POLICY
        ),
    )
    merged = PullRequest(url="https://f.example/o/r/pulls/3", number=3, state=PrState.MERGED)
    done = fold(review, t.update_pr(review, merged, T0, "webhook", POLICY))
    assert done.state is TaskState.COMPLETED
    assert done.spend == Spend(tokens=300, cost_usd=0.3)


def test_spend_by_attempt_lists_every_attempt_with_what_it_reported() -> None:
    task = new()
    events = t.create(
        t.NewTask(
            task_id=TaskId("t1"), title="x", prompt="p", required_capabilities=(),
            max_retries=5, timeout_secs=60,
        ),
        T0,
        "op",
    )  # fmt: skip
    task = fold(None, events)
    for lease, usage in (("L0", Usage(tokens=10, cost_usd=0.1)), ("L1", None)):
        step = t.assign(task, A, None, Lease(lease), T0, "a")
        task = fold(task, step)
        events += step
        if usage is not None:
            done = Receipt(
                task_id=TaskId("t1"), agent_id=A, status=ReceiptStatus.FAILED, usage=usage
            )
            step = t.accept_receipt(task, done, T0, "a", RetryPolicy())
        else:
            step = t.fail(task, FailureReason.TIMEOUT, "slow", T0, "loop", RetryPolicy())
        task = fold(task, step)
        events += step
        step = t.retry(task, T0, "op", manual=True)
        task = fold(task, step)
        events += step
    first, second = spend_by_attempt(events)
    assert (first.attempt, first.usage, first.spend) == (
        0, Usage(tokens=10, cost_usd=0.1), Spend(tokens=10, cost_usd=0.1),
    )  # fmt: skip
    assert (second.attempt, second.usage, second.spend) == (1, None, Spend())


# --- the task budget --------------------------------------------------------------


def test_the_failure_that_reaches_the_budget_is_budget_exceeded_and_not_retried() -> None:
    task = attempt(new(), 0.6)
    assert task.state is TaskState.CREATED  # $0.60 of $1.00: retried as usual
    held = assigned(task, "L2")
    [failed] = t.accept_receipt(held, receipt(ReceiptStatus.FAILED, 0.6), T0, "a", POLICY)
    assert isinstance(failed, TaskFailed)
    assert failed.reason is FailureReason.BUDGET_EXCEEDED and failed.retry_at is None
    assert failed.message == (
        "spent $1.2000 of its $1.0000 budget across 2 attempts; last attempt: error: tests fail"
    )
    assert fold(held, [failed]).spend == Spend(cost_usd=1.2)


def test_tokens_alone_can_exhaust_the_budget_and_any_reason_gives_way() -> None:
    task = attempt(new(), None, 10_000)
    assert task.state is TaskState.FAILED
    assert task.failure is not None and task.failure.reason is FailureReason.BUDGET_EXCEEDED
    assert "spent 10000 of its 10000 tokens" in task.failure.message
    # Over budget already: a timeout (no receipt) is budget_exceeded too, with its own words.
    retried = fold(task, t.retry(task, T0, "op", manual=True))
    held = assigned(retried, "L3")
    [failed] = t.fail(held, FailureReason.TIMEOUT, "no result within 60s", T0, "loop", POLICY)
    assert isinstance(failed, TaskFailed) and failed.reason is FailureReason.BUDGET_EXCEEDED
    assert failed.message.endswith("last attempt: timeout: no result within 60s")


def test_a_closed_pr_stays_pr_closed_and_no_budget_means_no_limit() -> None:
    held = assigned(new())
    review = fold(
        held,
        t.accept_receipt(held, receipt(ReceiptStatus.COMPLETED, 5.0, pr=True), T0, "a", POLICY),
    )
    closed = PullRequest(url="https://f.example/o/r/pulls/3", number=3, state=PrState.CLOSED)
    after = fold(review, t.update_pr(review, closed, T0, "webhook", POLICY))
    assert after.failure is not None and after.failure.reason is FailureReason.PR_CLOSED
    unlimited = RetryPolicy(base_delay=timedelta(seconds=10))
    held = assigned(new())
    [failed] = t.accept_receipt(held, receipt(ReceiptStatus.FAILED, 1e6), T0, "a", unlimited)
    assert isinstance(failed, TaskFailed) and failed.reason is FailureReason.ERROR
    assert failed.retry_at is not None


def test_a_lost_agent_does_not_bring_an_over_budget_task_back() -> None:
    task = attempt(new(), 2.0)
    retried = fold(task, t.retry(task, T0, "op", manual=True))  # the operator's override
    [lost] = t.lose(assigned(retried, "L4"), "agent went silent", T0, "loop", POLICY)
    assert isinstance(lost, TaskAgentLost) and lost.retry_at is None
    assert lost.message == "agent went silent; not retried: spent $2.0000 of its $1.0000 budget"
    [lost_cheap] = t.lose(assigned(new()), "agent went silent", T0, "loop", POLICY)
    assert isinstance(lost_cheap, TaskAgentLost) and lost_cheap.retry_at is not None


def test_a_review_does_not_send_an_over_budget_task_back() -> None:
    held = assigned(new())
    review = fold(
        held,
        t.accept_receipt(held, receipt(ReceiptStatus.COMPLETED, 3.0, pr=True), T0, "a", POLICY),
    )
    assert t.send_back(review, "fix it", T0, "reviewer", 3, BUDGET) == []
    assert len(t.send_back(review, "fix it", T0, "reviewer", 3, TaskBudget(max_cost_usd=5))) == 1


# --- the daily repository budget ----------------------------------------------------


def test_days_are_utc_days() -> None:
    assert day_start(T0) == datetime(2026, 3, 14, tzinfo=UTC)
    assert next_day(T0) == datetime(2026, 3, 15, tzinfo=UTC)
    assert next_day(datetime(2026, 12, 31, 23, 59, tzinfo=UTC)) == datetime(2027, 1, 1, tzinfo=UTC)


def test_repository_limits_one_for_all_and_by_name_in_any_case() -> None:
    budgets = DailyBudgets(default=10.0, per_repo={"acme/big": 100.0})
    assert budgets.limit_for("ACME/Big") == 100.0
    assert budgets.limit_for("acme/small") == 10.0
    assert DailyBudgets(per_repo={"acme/big": 1.0}).limit_for("acme/small") is None


def test_a_new_task_of_a_spent_repository_is_held_to_the_next_day() -> None:
    task = new()
    assert holds.hold_for_budget(task, Spend(cost_usd=4.99), 5.0, T0, "op") == []
    [held] = holds.hold_for_budget(task, Spend(cost_usd=5.0), 5.0, T0, "op")
    assert isinstance(held, TaskHeld)
    assert held.until == datetime(2026, 3, 15, tzinfo=UTC)
    assert held.message == "repository acme/widgets spent $5.00 of its $5.00 daily budget today"
    waiting = fold(task, [held])
    assert waiting.state is TaskState.CREATED and waiting.hold is not None
    assert holds.hold_for_budget(waiting, Spend(cost_usd=9.0), 5.0, T0, "op") == []  # held once
    assert holds.hold_for_budget(new(repo=None), Spend(cost_usd=9.0), 5.0, T0, "op") == []


def test_a_hold_ends_at_its_release_or_when_an_operator_assigns_the_task() -> None:
    held = fold(new(), holds.hold_for_budget(new(), Spend(cost_usd=9.0), 5.0, T0, "op"))
    assert held.hold is not None
    assert not holds.is_release_due(held, held.hold.until - timedelta(microseconds=1))
    assert holds.is_release_due(held, held.hold.until)
    [released] = holds.release(held, held.hold.until, "loop:holds", manual=False)
    assert isinstance(released, TaskHoldLifted) and fold(held, [released]).hold is None
    assert assigned(held).hold is None
    with pytest.raises(InvalidTransition):
        holds.release(new(), T0, "op", manual=True)
