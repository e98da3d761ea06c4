"""Example-based tests of each task decision and refusal (DESIGN §2)."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from agent_fleet.domain import task as t
from agent_fleet.domain.errors import InvalidTransition, NotTaskHolder, StaleLease
from agent_fleet.domain.events import (
    TaskAgentLost,
    TaskCompleted,
    TaskFailed,
    TaskRetried,
    TaskReviewPending,
)
from agent_fleet.domain.ids import AgentId, Lease, TaskId
from agent_fleet.domain.policies import RetryPolicy
from agent_fleet.domain.states import (
    FailureReason,
    LossCause,
    PrState,
    ReceiptStatus,
    TaskState,
)
from agent_fleet.domain.values import Artifact, PullRequest, Receipt

T0 = datetime(2026, 1, 1, tzinfo=UTC)
POLICY = RetryPolicy(base_delay=timedelta(seconds=10), max_delay=timedelta(seconds=60))
A = AgentId("agent-a")


def new(max_retries: int = 2) -> t.Task:
    spec = t.NewTask(
        task_id=TaskId("t1"),
        title="x",
        prompt="p",
        required_capabilities=("a",),
        max_retries=max_retries,
        timeout_secs=60,
    )
    return t.after(None, t.create(spec, T0, "op"))


def held(state: TaskState = TaskState.RUNNING, max_retries: int = 2) -> t.Task:
    task = t.after(new(max_retries), t.assign(new(max_retries), A, None, Lease("L1"), T0, "a"))
    return t.after(task, t.start(task, T0, "a")) if state is TaskState.RUNNING else task


def receipt(status: ReceiptStatus, *, pr: bool = False, lease: str = "L1") -> Receipt:
    artifacts = (Artifact(type="pr", url="https://f.example/o/r/pulls/12"),) if pr else ()
    return Receipt(
        task_id=TaskId("t1"),
        agent_id=A,
        lease=Lease(lease),
        status=status,
        summary="did it",
        artifacts=artifacts,
    )


def test_create_assign_start() -> None:
    task = held()
    assert task.state is TaskState.RUNNING
    assert (task.agent_id, task.lease, task.attempt, task.version) == (A, "L1", 0, 3)
    assert task.branch_name == "task/t1"
    assert t.start(task, T0, "a") == []  # a repeated "running" is harmless


def test_receipts_decide_the_outcome() -> None:
    [review] = t.accept_receipt(held(), receipt(ReceiptStatus.COMPLETED, pr=True), T0, "a", POLICY)
    assert isinstance(review, TaskReviewPending) and review.pr.number == 12
    [done] = t.accept_receipt(held(), receipt(ReceiptStatus.COMPLETED), T0, "a", POLICY)
    assert isinstance(done, TaskCompleted)
    [failed] = t.accept_receipt(held(), receipt(ReceiptStatus.FAILED), T0, "a", POLICY)
    assert isinstance(failed, TaskFailed) and failed.reason is FailureReason.ERROR
    [partial] = t.accept_receipt(held(), receipt(ReceiptStatus.PARTIAL), T0, "a", POLICY)
    assert isinstance(partial, TaskFailed) and partial.reason is FailureReason.PARTIAL
    assert partial.retry_at == T0 + timedelta(seconds=10)


def test_retry_policy_stops_at_max_retries_and_never_for_pr_closed() -> None:
    task = replace(held(max_retries=2), attempt=2)
    [last] = t.fail(task, FailureReason.TIMEOUT, "slow", T0, "loop", POLICY)
    assert isinstance(last, TaskFailed) and last.retry_at is None
    [closed] = t.fail(held(), FailureReason.PR_CLOSED, "closed", T0, "hook", POLICY)
    assert isinstance(closed, TaskFailed) and closed.retry_at is None


def test_retry_opens_the_next_attempt() -> None:
    failed = t.after(held(), t.fail(held(), FailureReason.ERROR, "x", T0, "a", POLICY))
    assert not t.is_retry_due(failed, T0 + timedelta(seconds=9))
    assert t.is_retry_due(failed, T0 + timedelta(seconds=10))
    [retried] = t.retry(failed, T0, "loop", manual=False)
    assert isinstance(retried, TaskRetried) and retried.attempt == 1
    again = t.after(failed, [retried])
    assert (again.state, again.attempt, again.agent_id, again.lease, again.failure) == (
        TaskState.CREATED,
        1,
        None,
        None,
        None,
    )
    with pytest.raises(InvalidTransition, match="it is created"):
        t.retry(again, T0, "op", manual=True)


def test_fencing_refuses_old_leases_and_other_agents() -> None:
    task = held()
    t.check_holder(task, A, "L1")
    t.check_holder(task, A, None)  # the original's agents send no lease
    with pytest.raises(StaleLease):
        t.check_holder(task, A, "L0")
    with pytest.raises(NotTaskHolder):
        t.check_holder(task, AgentId("agent-b"), None)
    with pytest.raises(StaleLease):
        t.check_holder(task, AgentId("agent-b"), "L0")


def test_pr_merge_completes_and_close_fails() -> None:
    review = t.after(
        held(), t.accept_receipt(held(), receipt(ReceiptStatus.COMPLETED, pr=True), T0, "a", POLICY)
    )
    merged = PullRequest(url="https://f.example/o/r/pulls/12", number=12, state=PrState.MERGED)
    done = t.after(review, t.update_pr(review, merged, T0, "hook", POLICY))
    assert done.state is TaskState.COMPLETED and done.pr == merged
    closed = replace(merged, state=PrState.CLOSED)
    failed = t.after(review, t.update_pr(review, closed, T0, "hook", POLICY))
    assert failed.state is TaskState.FAILED and failed.retry_at is None
    assert failed.failure is not None and failed.failure.reason is FailureReason.PR_CLOSED
    assert t.update_pr(done, merged, T0, "hook", POLICY) == []  # nothing new


def test_a_pr_seen_before_the_receipt_makes_the_receipt_a_review() -> None:
    running = held()
    opened = PullRequest(url="https://f.example/o/r/pulls/7", number=7, state=PrState.OPEN)
    with_pr = t.after(running, t.update_pr(running, opened, T0, "hook", POLICY))
    assert with_pr.state is TaskState.RUNNING and with_pr.pr == opened  # still working
    [review] = t.accept_receipt(with_pr, receipt(ReceiptStatus.COMPLETED), T0, "a", POLICY)
    assert isinstance(review, TaskReviewPending) and review.pr == opened
    closed = replace(opened, state=PrState.CLOSED)
    with_closed = t.after(running, t.update_pr(running, closed, T0, "hook", POLICY))
    [done] = t.accept_receipt(with_closed, receipt(ReceiptStatus.COMPLETED), T0, "a", POLICY)
    assert isinstance(done, TaskCompleted)  # a closed PR is not one to review


def test_a_review_sends_the_task_back_on_its_pr_until_rounds_run_out() -> None:
    review = t.after(
        held(), t.accept_receipt(held(), receipt(ReceiptStatus.COMPLETED, pr=True), T0, "a", POLICY)
    )
    [back] = t.send_back(review, "fix the tests", T0, "hook", max_rounds=1)
    again = t.after(review, [back])
    assert again.state is TaskState.CREATED and again.attempt == 1
    assert again.prompt == "fix the tests" and again.pr == review.pr  # same branch, same PR
    assert again.review_rounds == 1
    with pytest.raises(InvalidTransition):
        t.send_back(again, "more", T0, "hook", max_rounds=1)  # not under review now
    # Back under review (the agent pushed; its receipt names no PR): no round left.
    assigned = t.after(again, t.assign(again, A, None, Lease("L2"), T0, "a"))
    done = receipt(ReceiptStatus.COMPLETED, lease="L2")
    reviewing = t.after(assigned, t.accept_receipt(assigned, done, T0, "a", POLICY))
    assert reviewing.state is TaskState.REVIEW_PENDING
    assert t.send_back(reviewing, "still wrong", T0, "hook", max_rounds=1) == []


def test_reroute_only_before_start_and_cancel_from_any_live_state() -> None:
    assigned = held(TaskState.ASSIGNED)
    rerouted = t.after(assigned, t.reroute(assigned, ("b",), 5, T0, "hook"))
    assert (rerouted.state, rerouted.required_capabilities, rerouted.agent_id) == (
        TaskState.CREATED,
        ("b",),
        None,
    )
    assert t.reroute(rerouted, ("b",), 5, T0, "hook") == []
    with pytest.raises(InvalidTransition):
        t.reroute(held(), ("b",), 0, T0, "hook")
    for task in (new(), assigned, held()):
        assert t.after(task, t.cancel(task, "stop", T0, "op")).state is TaskState.CANCELLED
    cancelled = t.after(new(), t.cancel(new(), "stop", T0, "op"))
    with pytest.raises(InvalidTransition, match="it is cancelled"):
        t.cancel(cancelled, "again", T0, "op")


def test_progress_starts_an_assigned_task() -> None:
    assigned = held(TaskState.ASSIGNED)
    events = t.report_progress(assigned, "half", 50.0, T0, "a")
    after = t.after(assigned, events)
    assert after.state is TaskState.RUNNING and after.progress == 50.0
    assert [e.version for e in events] == [3, 4]


def _lost_to_our_crash(task: t.Task, now: datetime = T0) -> t.Task:
    """The orchestrator died while launching `task`'s attempt: lost, then retried."""
    lost = t.after(task, t.lose(task, "launch interrupted", now, "d", POLICY, cause=RESTART))
    return t.after(lost, t.retry(lost, now, "policy:auto-retry", manual=False))


def _attempt(task: t.Task, lease: str) -> t.Task:
    """The next attempt assigned and started."""
    task = t.after(task, t.assign(task, A, None, Lease(lease), T0, "a"))
    return t.after(task, t.start(task, T0, "a"))


RESTART = LossCause.ORCHESTRATOR_RESTART


def test_an_attempt_our_crash_ended_is_retried_at_once_and_does_not_count() -> None:
    # max_retries 0: one attempt of the agent's own, however often we crash meanwhile.
    task = held(TaskState.ASSIGNED, max_retries=0)
    (lost,) = t.lose(task, "launch interrupted", T0, "dispatcher", POLICY, cause=RESTART)
    assert isinstance(lost, TaskAgentLost)
    assert lost.cause is RESTART and lost.retry_at == T0  # due now: no backoff, no limit
    for n in range(1, 4):
        task = _lost_to_our_crash(task)
        assert (task.state, task.attempt, task.free_attempts) == (TaskState.CREATED, n, n)
        assert task.counted_attempts == 0
        task = t.after(task, t.assign(task, A, None, Lease(f"L{n + 1}"), T0, "a"))
    # The agent's own failure still counts: with max_retries 0 it is final.
    (failed,) = t.fail(task, FailureReason.ERROR, "boom", T0, "a", POLICY)
    assert isinstance(failed, TaskFailed) and failed.retry_at is None


def test_the_agents_own_failures_still_count_and_back_off_by_counted_attempts() -> None:
    task = _lost_to_our_crash(held(TaskState.ASSIGNED, max_retries=1))
    task = _attempt(task, "L2")  # attempt 1, the first that counts
    (first,) = t.fail(task, FailureReason.ERROR, "boom", T0, "a", POLICY)
    assert isinstance(first, TaskFailed) and first.retry_at == T0 + POLICY.base_delay
    task = t.after(task, [first])
    task = t.after(task, t.retry(task, T0, "loop", manual=False))
    task = _attempt(task, "L3")
    (second,) = t.lose(task, "silent", T0, "loop", POLICY)  # an agent gone silent counts
    assert isinstance(second, TaskAgentLost) and second.cause is None
    assert second.retry_at is None  # 2 attempts of its own with max_retries 1: done
    assert t.after(task, [second]).free_attempts == 1


def test_free_attempts_are_rebuilt_from_the_events_alone() -> None:
    log: list[t.TaskEvent] = []

    def step(task: t.Task | None, events: list[t.TaskEvent]) -> t.Task:
        log.extend(events)
        return t.after(task, events)

    task = step(None, t.create(_spec(), T0, "op"))
    for n in range(2):
        task = step(task, t.assign(task, A, None, Lease(f"L{n}"), T0, "a"))
        task = step(task, t.lose(task, "launch interrupted", T0, "d", POLICY, cause=RESTART))
        task = step(task, t.retry(task, T0, "policy:auto-retry", manual=False))
    assert (task.attempt, task.free_attempts, task.counted_attempts) == (2, 2, 0)
    assert t.replay(log) == task


def _spec() -> t.NewTask:
    """A task that gets one attempt of its own."""
    return t.NewTask(
        task_id=TaskId("t1"),
        title="x",
        prompt="p",
        required_capabilities=(),
        max_retries=0,
        timeout_secs=60,
    )
