"""A Hypothesis state machine over the task lifecycle: random commands, invariants after each.

The machine drives the pure decisions of `domain.task` for a few tasks and
agents, folds the events with `evolve`, and checks after every step: nobody
holds a task twice, capacity holds, attempts stay within max_retries plus
manual retries plus those our own crashes ended (which the history names), only
allowed transitions happen, versions have no gaps, and a replay of the stored
events equals the current state (by `evolve`, and by `TaskReplay`, the rebuild's fold).
"""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from agent_fleet.domain import task as t
from agent_fleet.domain.errors import FleetError, NotTaskHolder, StaleLease
from agent_fleet.domain.events import TaskAgentLost, TaskEvent, TaskFailed, TaskRetried
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

S = TaskState
ALLOWED: set[tuple[TaskState, TaskState]] = {
    (S.CREATED, S.ASSIGNED),
    (S.CREATED, S.CREATED),
    (S.ASSIGNED, S.CREATED),
    (S.ASSIGNED, S.RUNNING),
    (S.ASSIGNED, S.FAILED),
    (S.ASSIGNED, S.AGENT_LOST),
    (S.RUNNING, S.REVIEW_PENDING),
    (S.RUNNING, S.COMPLETED),
    (S.RUNNING, S.FAILED),
    (S.RUNNING, S.AGENT_LOST),
    (S.ASSIGNED, S.REVIEW_PENDING),
    (S.ASSIGNED, S.COMPLETED),
    (S.REVIEW_PENDING, S.COMPLETED),
    (S.REVIEW_PENDING, S.FAILED),
    (S.FAILED, S.CREATED),
    (S.AGENT_LOST, S.CREATED),
    *((s, S.CANCELLED) for s in S if s not in (S.COMPLETED, S.CANCELLED)),
}
AGENTS = [AgentId(f"agent-{i}") for i in range(3)]
CAPACITY = 2
POLICY = RetryPolicy(base_delay=timedelta(seconds=5), max_delay=timedelta(seconds=40))
T0 = datetime(2026, 1, 1, tzinfo=UTC)
task_index = st.integers(min_value=0, max_value=2)


class Lifecycle(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = T0
        self.tasks: dict[str, t.Task] = {}
        self.log: dict[str, list[TaskEvent]] = {}
        self.manual_retries: dict[str, int] = {}
        self.old_leases: dict[str, list[str]] = {}
        self.leases = 0

    # --- plumbing -------------------------------------------------------------

    def _apply(self, task_id: str, decide: "t.Decision | None" = None) -> None:
        before = self.tasks[task_id]
        try:
            events = decide(before) if decide else []
        except FleetError:
            return  # refused: nothing may change
        after = before
        for event in events:
            after = t.evolve(after, event)
            assert (before.state, after.state) in ALLOWED or before.state == after.state, (
                f"{before.state} → {after.state} by {type(event).__name__}"
            )
        self.log[task_id].extend(events)
        self.tasks[task_id] = after
        if before.lease is not None and after.lease != before.lease:
            self.old_leases[task_id].append(before.lease)  # that attempt is over

    def _pick(self, index: int) -> str | None:
        ids = sorted(self.tasks)
        return ids[index % len(ids)] if ids else None

    # --- rules ----------------------------------------------------------------

    @rule(max_retries=st.integers(0, 3), caps=st.sampled_from([(), ("a",), ("a", "b")]))
    def create(self, max_retries: int, caps: tuple[str, ...]) -> None:
        if len(self.tasks) >= 3:
            return  # few tasks, so that each one lives through many steps
        task_id = TaskId(f"task-{len(self.tasks)}")
        new = t.NewTask(
            task_id=task_id,
            title="x",
            prompt="p",
            required_capabilities=caps,
            max_retries=max_retries,
            timeout_secs=60,
        )
        events = t.create(new, self.now, "op")
        self.tasks[task_id] = t.replay(list(events))  # type: ignore[assignment]
        self.log[task_id] = list(events)
        self.manual_retries[task_id] = 0
        self.old_leases[task_id] = []

    @rule(i=task_index, agent=st.sampled_from(AGENTS))
    def assign(self, i: int, agent: AgentId) -> None:
        task_id = self._pick(i)
        if task_id is None:
            return
        held = sum(1 for x in self.tasks.values() if x.is_held and x.agent_id == agent)
        if held >= CAPACITY:
            return  # the store refuses a full agent; the machine models that
        self.leases += 1
        lease = Lease(f"lease-{self.leases}")
        self._apply(task_id, lambda x: t.assign(x, agent, None, lease, self.now, agent))

    @rule(i=task_index)
    def start(self, i: int) -> None:
        if (task_id := self._pick(i)) is not None:
            self._apply(task_id, lambda x: t.start(x, self.now, "agent"))

    @rule(i=task_index, status=st.sampled_from(list(ReceiptStatus)), with_pr=st.booleans())
    def receipt(self, i: int, status: ReceiptStatus, with_pr: bool) -> None:
        task_id = self._pick(i)
        if task_id is None or self.tasks[task_id].agent_id is None:
            return
        task = self.tasks[task_id]
        artifacts = (Artifact(type="pr", url="https://f/o/r/pulls/3"),) if with_pr else ()
        receipt = Receipt(
            task_id=task.task_id,
            agent_id=task.agent_id,  # type: ignore[arg-type]
            lease=task.lease,
            status=status,
            artifacts=artifacts,
        )

        def decide(x: t.Task) -> list[TaskEvent]:
            t.check_holder(x, receipt.agent_id, receipt.lease)
            return t.accept_receipt(x, receipt, self.now, "agent", POLICY)

        self._apply(task_id, decide)

    @rule(i=task_index, reason=st.sampled_from(list(FailureReason)))
    def fail(self, i: int, reason: FailureReason) -> None:
        if (task_id := self._pick(i)) is not None:
            self._apply(task_id, lambda x: t.fail(x, reason, "boom", self.now, "loop", POLICY))

    @rule(i=task_index)
    def lose(self, i: int) -> None:
        if (task_id := self._pick(i)) is not None:
            self._apply(task_id, lambda x: t.lose(x, "silent", self.now, "loop", POLICY))

    @rule(i=task_index)
    def orchestrator_crash_loses_the_launch(self, i: int) -> None:
        """We died mid-launch: the attempt ends, is retried at once, and does not count."""
        if (task_id := self._pick(i)) is None:
            return
        before = self.tasks[task_id]
        cause = LossCause.ORCHESTRATOR_RESTART
        self._apply(task_id, lambda x: t.lose(x, "interrupted", self.now, "d", POLICY, cause=cause))
        after = self.tasks[task_id]
        if after.version != before.version:
            assert t.is_retry_due(after, self.now), "a free attempt must be retried at once"
            retried = t.evolve(after, t.retry(after, self.now, "loop", manual=False)[0])
            assert retried.counted_attempts == before.counted_attempts, "it was counted"

    @rule(i=task_index, merged=st.booleans())
    def pr_closes(self, i: int, merged: bool) -> None:
        state = PrState.MERGED if merged else PrState.CLOSED
        pr = PullRequest(url="https://f/o/r/pulls/3", number=3, state=state)
        if (task_id := self._pick(i)) is not None:
            self._apply(task_id, lambda x: t.update_pr(x, pr, self.now, "webhook", POLICY))

    @rule(seconds=st.integers(1, 120))
    def time_passes_and_due_retries_run(self, seconds: int) -> None:
        self.now += timedelta(seconds=seconds)
        for task_id, task in list(self.tasks.items()):
            if t.is_retry_due(task, self.now):
                self._apply(task_id, lambda x: t.retry(x, self.now, "loop", manual=False))

    @rule(i=task_index)
    def manual_retry(self, i: int) -> None:
        task_id = self._pick(i)
        if task_id is None:
            return
        before = self.tasks[task_id].version
        self._apply(task_id, lambda x: t.retry(x, self.now, "op", manual=True))
        if self.tasks[task_id].version != before:
            self.manual_retries[task_id] += 1

    @rule(i=task_index)
    def cancel(self, i: int) -> None:
        if (task_id := self._pick(i)) is not None:
            self._apply(task_id, lambda x: t.cancel(x, "stop", self.now, "op"))

    @rule(i=task_index, caps=st.sampled_from([("a",), ("b",)]), priority=st.integers(-5, 5))
    def reroute(self, i: int, caps: tuple[str, ...], priority: int) -> None:
        if (task_id := self._pick(i)) is not None:
            self._apply(task_id, lambda x: t.reroute(x, caps, priority, self.now, "webhook"))

    @rule(i=task_index, agent=st.sampled_from(AGENTS))
    def stale_lease_is_refused(self, i: int, agent: AgentId) -> None:
        task_id = self._pick(i)
        if task_id is None or not self.old_leases[task_id]:
            return
        before = self.tasks[task_id]
        old = self.old_leases[task_id][-1]
        refused = False
        # The strongest case: the current holder itself presents its older lease.
        speaker = before.agent_id or agent
        try:
            t.check_holder(before, speaker, old)
        except (StaleLease, NotTaskHolder):
            refused = True
        assert refused, "an old lease was accepted"
        assert self.tasks[task_id] == before

    # --- invariants -------------------------------------------------------------

    @invariant()
    def one_holder_and_capacity(self) -> None:
        for agent in AGENTS:
            held = [x for x in self.tasks.values() if x.is_held and x.agent_id == agent]
            assert len(held) <= CAPACITY
        for task in self.tasks.values():
            assert task.is_held == (task.agent_id is not None and task.lease is not None) or (
                not task.is_held
            )

    @invariant()
    def attempts_are_bounded(self) -> None:
        for task_id, task in self.tasks.items():
            free = task.free_attempts
            assert task.attempt <= task.max_retries + self.manual_retries[task_id] + free

    @invariant()
    def free_attempts_are_the_ones_the_history_names(self) -> None:
        for task_id, task in self.tasks.items():
            free, ended_by = 0, None  # the event that ended the attempt being retried
            for event in self.log[task_id]:
                if isinstance(event, TaskAgentLost | TaskFailed):
                    ended_by = event
                elif isinstance(event, TaskRetried) and event.free:
                    free += 1  # each one follows a loss our own crash caused
                    assert isinstance(ended_by, TaskAgentLost) and ended_by.cause, ended_by
            assert task.free_attempts == free
            assert 0 <= task.counted_attempts <= task.attempt

    @invariant()
    def versions_have_no_gaps_and_replay_equals_state(self) -> None:
        for task_id, events in self.log.items():
            assert [e.version for e in events] == list(range(1, len(events) + 1))
            assert t.replay(events) == self.tasks[task_id]
            assert self.tasks[task_id].version == len(events)

    @invariant()
    def a_whole_log_replay_folds_as_evolve_does(self) -> None:
        # `db rebuild`'s fold (drafts, one Task per task), over every history interleaved.
        whole = t.TaskReplay()
        for event in sorted((e for log in self.log.values() for e in log), key=lambda e: e.at):
            whole.apply(event)
        assert whole.tasks() == self.tasks


Lifecycle.TestCase.settings = settings(max_examples=300, stateful_step_count=50, deadline=None)
# CPU-bound (a replay per step): a few seconds idle, minutes on a starved machine.
TestLifecycle = pytest.mark.timeout(900)(Lifecycle.TestCase)
