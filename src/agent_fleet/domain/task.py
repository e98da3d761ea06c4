"""The task aggregate: its state, the fold `evolve`, and the decisions that emit events.

Decisions are pure: they take the current state, a command's data and `now`,
and return the events to append, or raise a domain error. `evolve` never
raises for an event that a decision produced.

Over 300 lines on purpose: the aggregate, its fold and every decision that reads it
are one unit (a new event is added to all three, and `assert_never` checks the fold
is complete). What stands alone has left: the state table (`lifecycle.py`), holds
(`holds.py`), spend and budgets (`budget.py`), routing (`matching.py`).
"""

from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields, replace
from datetime import datetime, timedelta
from operator import attrgetter
from typing import Any, Protocol, assert_never

from agent_fleet.domain.budget import Hold, Spend, TaskBudget, budget_failure, receipt_of
from agent_fleet.domain.errors import InvalidTransition, NotTaskHolder, StaleLease
from agent_fleet.domain.events import (
    Envelope,
    TaskAgentLost,
    TaskAssigned,
    TaskCancelled,
    TaskCompleted,
    TaskCreated,
    TaskEvent,
    TaskFailed,
    TaskHeld,
    TaskHoldLifted,
    TaskProgress,
    TaskPrUpdated,
    TaskReleased,
    TaskRerouted,
    TaskRetried,
    TaskReviewPending,
    TaskStarted,
)
from agent_fleet.domain.ids import AgentId, Lease, TaskId
from agent_fleet.domain.lifecycle import state_after
from agent_fleet.domain.policies import RetryPolicy, retry_due_at
from agent_fleet.domain.states import (
    FINAL_STATES,
    HELD_STATES,
    RECEIPT_REASONS,
    RETRYABLE_STATES,
    ExecutionMode,
    FailureReason,
    LossCause,
    PrState,
    ReceiptStatus,
    TaskState,
)
from agent_fleet.domain.values import Failure, PullRequest, Receipt, Source


@dataclass(frozen=True, slots=True, kw_only=True)
class Task:
    task_id: TaskId
    version: int
    title: str
    prompt: str
    state: TaskState
    required_capabilities: tuple[str, ...]
    execution_mode: ExecutionMode
    priority: int
    attempt: int
    max_retries: int
    timeout_secs: int
    source: Source
    created_at: datetime
    updated_at: datetime
    agent_id: AgentId | None = None
    host_id: str | None = None
    lease: Lease | None = None
    assigned_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    retry_at: datetime | None = None
    receipt: Receipt | None = None
    failure: Failure | None = None
    pr: PullRequest | None = None
    progress: float | None = None
    progress_message: str | None = None
    review_rounds: int = 0
    #: Summed over every attempt's receipt: what budgets are checked against.
    spend: Spend = field(default_factory=Spend)
    #: Set while a waiting task may not be claimed (its repository's daily budget).
    hold: Hold | None = None
    #: Retries that replaced an attempt the orchestrator's own crash or restart ended
    #: (`LossCause`): numbered like any other, they do not count against `max_retries`.
    free_attempts: int = 0

    @property
    def branch_name(self) -> str:
        return branch_for(self.task_id)

    @property
    def pr_title(self) -> str:
        """The title of the task's pull request (the original's `pr_title`)."""
        return self.title

    @property
    def is_held(self) -> bool:
        return self.state in HELD_STATES

    @property
    def next_version(self) -> int:
        return self.version + 1

    def envelope(self, now: datetime, actor: str, later: int = 0) -> Envelope:
        """The envelope of the task's next event (`later`: of the one after that many)."""
        return Envelope(
            stream_id=self.task_id, version=self.next_version + later, at=now, actor=actor
        )

    @property
    def counted_attempts(self) -> int:
        """Retries so far that count against `max_retries` (`attempt`, less free ones)."""
        return self.attempt - self.free_attempts


#: A decision bound to its command's data: current state in, events out.
Decision = Callable[[Task], list[TaskEvent]]


def branch_for(task_id: str) -> str:
    return f"task/{task_id}"


@dataclass(frozen=True, slots=True, kw_only=True)
class NewTask:
    """The data of a create command, already validated at the edge."""

    task_id: TaskId
    title: str
    prompt: str
    required_capabilities: tuple[str, ...]
    execution_mode: ExecutionMode = ExecutionMode.UNDECIDED
    priority: int = 0
    max_retries: int
    timeout_secs: int
    source: Source = field(default_factory=Source)


# --- the fold -------------------------------------------------------------------


def evolve(task: Task | None, event: TaskEvent) -> Task:
    if isinstance(event, TaskCreated):
        return _created(event)
    if task is None:
        raise ValueError(f"{type(event).__name__} before task.created on {event.stream_id}")
    # One `replace` per event: a replay of a million events feels every copy.
    return replace(task, **_step(task, event))


class _Folded(Protocol):
    """What a step of the fold reads of the task so far: a `Task`, or a replay's draft."""

    @property
    def state(self) -> TaskState: ...
    @property
    def prompt(self) -> str: ...
    @property
    def receipt(self) -> Receipt | None: ...
    @property
    def pr(self) -> PullRequest | None: ...
    @property
    def review_rounds(self) -> int: ...
    @property
    def free_attempts(self) -> int: ...
    @property
    def spend(self) -> Spend: ...
    @property
    def hold(self) -> Hold | None: ...


def _step(task: _Folded, event: TaskEvent) -> dict[str, Any]:
    """Every field an event (other than task.created) changes, with its new value."""
    state = state_after(task.state, event)
    changes = _changes(task, event)
    changes.update(_ledger(task, event, state), state=state)
    changes["version"] = event.version
    changes["updated_at"] = event.at
    return changes


_FIELDS = tuple(f.name for f in fields(Task))
_DEFAULTS = {
    f.name: f.default_factory() if f.default_factory is not MISSING else f.default
    for f in fields(Task)
    if f.default is not MISSING or f.default_factory is not MISSING
}
_VALUES = attrgetter(*_FIELDS)


class _Draft:
    """A task during a replay: mutable, so an event changes a few slots instead of
    copying the 31 fields of a frozen `Task` (most of a replay's time went to those
    copies). Only `TaskReplay` makes them; they never leave it."""

    __slots__ = _FIELDS
    # What `_step` reads (the slots are typed by `Task`'s fields; mypy sees these).
    state: TaskState
    prompt: str
    receipt: Receipt | None
    pr: PullRequest | None
    review_rounds: int
    free_attempts: int
    spend: Spend
    hold: Hold | None

    def __init__(self, values: dict[str, Any]) -> None:
        for name, value in values.items():
            setattr(self, name, value)

    def freeze(self) -> Task:
        return Task(**dict(zip(_FIELDS, _VALUES(self), strict=True)))


class TaskReplay:
    """Folds the task events of a whole log, in order, into the tasks they leave:
    the same steps as `evolve`, with each task kept as a draft until `tasks()`
    (one `Task` built per task, not one per event)."""

    def __init__(self) -> None:
        self._drafts: dict[str, _Draft] = {}

    def __len__(self) -> int:
        return len(self._drafts)

    def apply(self, event: TaskEvent) -> None:
        if isinstance(event, TaskCreated):
            self._drafts[event.stream_id] = _Draft({**_DEFAULTS, **_created_fields(event)})
            return
        draft = self._drafts.get(event.stream_id)
        if draft is None:
            raise ValueError(f"{type(event).__name__} before task.created on {event.stream_id}")
        for name, value in _step(draft, event).items():
            setattr(draft, name, value)

    def tasks(self) -> dict[str, Task]:
        return {task_id: draft.freeze() for task_id, draft in self._drafts.items()}


def _ledger(task: _Folded, event: TaskEvent, state: TaskState) -> dict[str, Any]:
    """What outlives attempts: spend adds up across them; a hold ends once the task moves on."""
    out: dict[str, Any] = {}
    receipt = receipt_of(event)
    if receipt is not None and receipt.usage is not None:
        out["spend"] = task.spend.plus(receipt.usage)
    if task.hold is not None and state is not TaskState.CREATED:
        out["hold"] = None
    return out


def _changes(task: _Folded, event: TaskEvent) -> dict[str, Any]:
    """The fields an event (other than task.created) sets, besides its state (`lifecycle`),
    version and updated_at."""
    match event:
        case TaskCreated():  # handled by evolve; kept so the match stays exhaustive
            return {}
        case TaskRerouted():
            return dict(
                required_capabilities=event.required_capabilities,
                priority=event.priority,
                agent_id=None,
                host_id=None,
                lease=None,
                assigned_at=None,
            )
        case TaskAssigned():
            return dict(
                agent_id=event.agent_id,
                host_id=event.host_id,
                lease=event.lease,
                attempt=event.attempt,
                assigned_at=event.at,
                retry_at=None,
            )
        case TaskStarted():
            return dict(started_at=event.at)
        case TaskProgress():
            return dict(progress=event.progress, progress_message=event.message)
        case TaskReviewPending():
            return dict(receipt=event.receipt, pr=event.pr)
        case TaskCompleted():
            return dict(
                receipt=event.receipt or task.receipt,
                finished_at=event.at,
            )
        case TaskFailed():
            return dict(
                failure=Failure(reason=event.reason, message=event.message),
                receipt=event.receipt or task.receipt,
                retry_at=event.retry_at,
                finished_at=event.at,
            )
        case TaskAgentLost():
            return dict(
                failure=Failure(
                    reason=FailureReason.AGENT_LOST, message=event.message, cause=event.cause
                ),
                retry_at=event.retry_at,
                finished_at=event.at,
            )
        case TaskReleased():
            return dict(agent_id=None, host_id=None, lease=None, assigned_at=None)
        case TaskRetried():
            return dict(
                attempt=event.attempt,
                prompt=event.prompt if event.prompt is not None else task.prompt,
                agent_id=None,
                host_id=None,
                lease=None,
                assigned_at=None,
                started_at=None,
                finished_at=None,
                retry_at=None,
                failure=None,
                receipt=None,
                pr=task.pr if event.review else None,
                progress=None,
                progress_message=None,
                review_rounds=task.review_rounds + int(event.review),
                free_attempts=task.free_attempts + int(event.free),
            )
        case TaskCancelled():
            return dict(retry_at=None, finished_at=event.at)
        case TaskPrUpdated():
            return dict(pr=event.pr)
        case TaskHeld():
            return dict(hold=Hold(reason=event.message, until=event.until))
        case TaskHoldLifted():
            return dict(hold=None)
        case _:
            assert_never(event)


def _created(event: TaskCreated) -> Task:
    return Task(**_created_fields(event))


def _created_fields(event: TaskCreated) -> dict[str, Any]:
    return dict(
        task_id=TaskId(event.stream_id),
        version=event.version,
        title=event.title,
        prompt=event.prompt,
        state=TaskState.CREATED,
        required_capabilities=event.required_capabilities,
        execution_mode=event.execution_mode,
        priority=event.priority,
        attempt=0,
        max_retries=event.max_retries,
        timeout_secs=event.timeout_secs,
        source=event.source,
        created_at=event.at,
        updated_at=event.at,
    )


def replay(events: list[TaskEvent]) -> Task | None:
    task: Task | None = None
    for event in events:
        task = evolve(task, event)
    return task


def after(task: Task | None, events: list[TaskEvent]) -> Task:
    """The task once `events` (a decision's, at least one) are folded onto it."""
    for event in events:
        task = evolve(task, event)
    if task is None:
        raise ValueError("no events to fold")
    return task


# --- decisions ------------------------------------------------------------------


def create(new: NewTask, now: datetime, actor: str) -> list[TaskEvent]:
    return [
        TaskCreated(
            stream_id=new.task_id,
            version=1,  # a stream begins
            at=now,
            actor=actor,
            title=new.title,
            prompt=new.prompt,
            required_capabilities=new.required_capabilities,
            execution_mode=new.execution_mode,
            priority=new.priority,
            max_retries=new.max_retries,
            timeout_secs=new.timeout_secs,
            source=new.source,
        )
    ]


def assign(
    task: Task, agent_id: AgentId, host_id: str | None, lease: Lease, now: datetime, actor: str
) -> list[TaskEvent]:
    _require(task, {TaskState.CREATED}, "assign")
    return [
        TaskAssigned(
            **task.envelope(now, actor),
            agent_id=agent_id,
            host_id=host_id,
            attempt=task.attempt,
            lease=lease,
        )
    ]


def reroute(
    task: Task, capabilities: tuple[str, ...], priority: int, now: datetime, actor: str
) -> list[TaskEvent]:
    """New labels on a task nobody started yet: it goes back to the queue with them."""
    _require(task, {TaskState.CREATED, TaskState.ASSIGNED}, "re-route")
    if capabilities == task.required_capabilities and priority == task.priority:
        return []
    return [
        TaskRerouted(
            **task.envelope(now, actor),
            required_capabilities=capabilities,
            priority=priority,
        )
    ]


def check_holder(task: Task, agent_id: str, lease: str | None) -> None:
    """Fencing: only the current attempt's holder may speak for the task.

    A lease that is not the current one is an older attempt: `StaleLease`,
    whoever sends it, so a superseded process can never change the task.
    Without a lease (the original's agents send none), the agent must hold it.
    """
    if lease is not None and lease != task.lease:
        raise StaleLease(task.task_id, task.attempt)
    if task.agent_id != agent_id:
        raise NotTaskHolder(task.task_id, agent_id)


def start(task: Task, now: datetime, actor: str) -> list[TaskEvent]:
    if task.state is TaskState.RUNNING:
        return []  # a repeated "running" (lost reply) changes nothing
    _require(task, {TaskState.ASSIGNED}, "start")
    assert task.agent_id is not None  # ASSIGNED always has a holder
    return [
        TaskStarted(
            **task.envelope(now, actor),
            agent_id=task.agent_id,
            attempt=task.attempt,
        )
    ]


def report_progress(
    task: Task, message: str | None, progress: float | None, now: datetime, actor: str
) -> list[TaskEvent]:
    events = start(task, now, actor) if task.state is TaskState.ASSIGNED else []
    _require(task, HELD_STATES, "report progress on")
    if message is None and progress is None:
        return events
    return [
        *events,
        TaskProgress(
            **task.envelope(now, actor, later=len(events)),
            message=message,
            progress=progress,
        ),
    ]


def accept_receipt(
    task: Task,
    receipt: Receipt,
    now: datetime,
    actor: str,
    policy: RetryPolicy,
    opened: PullRequest | None = None,
) -> list[TaskEvent]:
    """A receipt ends the attempt: completed, review_pending (a PR), or failed.

    `opened` is the pull request the server opened (or found) for the branch the
    receipt names. A task from an issue whose run shows no work in the repository (no
    PR, branch or commit) fails `no_changes`: nothing was delivered."""
    _require(task, HELD_STATES, "complete")
    if receipt.status is ReceiptStatus.COMPLETED:
        if is_from_issue(task) and not receipt.shows_work():
            message = f"the run changed nothing in {task.source.repo}: no commit, no diff"
            return fail(task, FailureReason.NO_CHANGES, message, now, actor, policy, receipt)
        urls = receipt.pr_urls()
        # A PR the forge told us about first (webhook on branch task/<id>) counts too.
        known = task.pr if task.pr is not None and task.pr.state is PrState.OPEN else None
        if urls or opened or known:
            pr = PullRequest(url=urls[0], number=_pr_number(urls[0])) if urls else opened or known
            assert pr is not None
            return [TaskReviewPending(**task.envelope(now, actor), receipt=receipt, pr=pr)]
        return [TaskCompleted(**task.envelope(now, actor), receipt=receipt)]
    reason = (
        FailureReason.PARTIAL if receipt.status is ReceiptStatus.PARTIAL else FailureReason.ERROR
    )
    if receipt.reason in RECEIPT_REASONS and receipt.status is ReceiptStatus.FAILED:
        reason = receipt.reason
    message = receipt.error or receipt.summary or f"agent reported {receipt.status}"
    return fail(task, reason, message, now, actor, policy, receipt=receipt)


def is_from_issue(task: Task) -> bool:
    """A task made from an issue in a repository: its work must arrive there."""
    return task.source.repo is not None and task.source.issue_number is not None


def fail(
    task: Task,
    reason: FailureReason,
    message: str,
    now: datetime,
    actor: str,
    policy: RetryPolicy,
    receipt: Receipt | None = None,
) -> list[TaskEvent]:
    allowed = HELD_STATES | {TaskState.REVIEW_PENDING}
    _require(task, allowed, "fail")
    reason, message = _within_budget(task, reason, message, receipt, policy.budget)
    retry_at = retry_due_at(task.counted_attempts, task.max_retries, reason, now, policy)
    return [
        TaskFailed(
            **task.envelope(now, actor),
            reason=reason,
            message=message,
            receipt=receipt,
            retry_at=retry_at,
        )
    ]


def _within_budget(
    task: Task,
    reason: FailureReason,
    message: str,
    receipt: Receipt | None,
    budget: TaskBudget,
) -> tuple[FailureReason, str]:
    """A failure that leaves the task past its budget is `budget_exceeded` (never retried
    on its own); a closed PR stays `pr_closed`, a person's decision."""
    spend = task.spend.plus(receipt.usage if receipt is not None else None)
    overrun = budget.overrun(spend)
    if overrun is None or reason is FailureReason.PR_CLOSED:
        return reason, message
    text = budget_failure(overrun, task.attempt + 1, reason.value, message)
    return FailureReason.BUDGET_EXCEEDED, text


def lose(
    task: Task,
    message: str,
    now: datetime,
    actor: str,
    policy: RetryPolicy,
    cause: LossCause | None = None,
) -> list[TaskEvent]:
    """The holder went silent or away: the attempt is lost, and retried by policy.

    With a `cause` the orchestrator itself ended the attempt (it crashed mid-launch):
    the attempt is free, so the retry is due at once whatever the count and backoff.
    """
    _require(task, HELD_STATES, "mark agent_lost")
    retry_at = (
        now
        if cause is not None
        else retry_due_at(
            task.counted_attempts, task.max_retries, FailureReason.AGENT_LOST, now, policy
        )
    )
    overrun = policy.budget.overrun(task.spend)
    if overrun is not None and retry_at is not None:
        retry_at, message = None, f"{message}; not retried: {overrun}"
    return [
        TaskAgentLost(
            **task.envelope(now, actor),
            agent_id=task.agent_id,
            message=message,
            retry_at=retry_at,
            cause=cause,
        )
    ]


def release(task: Task, message: str, now: datetime, actor: str) -> list[TaskEvent]:
    """Take back an assignment its agent never started: open again, same attempt."""
    _require(task, {TaskState.ASSIGNED}, "release")
    return [
        TaskReleased(
            **task.envelope(now, actor),
            agent_id=task.agent_id,
            message=message,
        )
    ]


def take_back(
    task: Task, message: str, now: datetime, actor: str, policy: RetryPolicy
) -> list[TaskEvent]:
    """The holder is gone. Nothing started (a pull agent's unstarted assignment): released,
    no attempt spent. Started, or placed on a host (whose run may exist): lost, retried."""
    if task.state is TaskState.ASSIGNED and task.host_id is None:
        return release(task, message, now, actor)
    return lose(task, message, now, actor, policy)


def retry(
    task: Task, now: datetime, actor: str, *, manual: bool, prompt: str | None = None
) -> list[TaskEvent]:
    _require(task, RETRYABLE_STATES, "retry")
    return [_next_attempt(task, now, actor, manual=manual, prompt=prompt)]


def send_back(
    task: Task,
    prompt: str,
    now: datetime,
    actor: str,
    max_rounds: int,
    budget: TaskBudget | None = None,
) -> list[TaskEvent]:
    """A review requested changes: a new attempt on the same branch and PR, with the
    review as its prompt, while review rounds and the task's budget remain (then people
    take it from here)."""
    _require(task, {TaskState.REVIEW_PENDING}, "send back for changes")
    if task.review_rounds >= max_rounds:
        return []
    if budget is not None and budget.overrun(task.spend) is not None:
        return []
    return [_next_attempt(task, now, actor, manual=False, prompt=prompt, review=True)]


def _next_attempt(
    task: Task,
    now: datetime,
    actor: str,
    *,
    manual: bool,
    prompt: str | None,
    review: bool = False,
) -> TaskRetried:
    return TaskRetried(
        **task.envelope(now, actor),
        attempt=task.attempt + 1,
        manual=manual,
        prompt=prompt,
        review=review,
        free=task.failure is not None and task.failure.cause is not None,
    )


def is_retry_due(task: Task, now: datetime) -> bool:
    return task.state in RETRYABLE_STATES and task.retry_at is not None and task.retry_at <= now


def cancel(task: Task, message: str, now: datetime, actor: str) -> list[TaskEvent]:
    """Any state that is not final can be cancelled; a failed task's pending retry with it."""
    if task.state in FINAL_STATES:
        raise InvalidTransition(task.task_id, task.state, "cancel")
    return [TaskCancelled(**task.envelope(now, actor), message=message)]


def update_pr(
    task: Task, pr: PullRequest, now: datetime, actor: str, policy: RetryPolicy
) -> list[TaskEvent]:
    """Follow the PR: merged completes the task, closed unmerged fails it (never retried)."""
    if task.pr == pr:
        return []
    updated = TaskPrUpdated(**task.envelope(now, actor), pr=pr)
    if task.state is not TaskState.REVIEW_PENDING:
        return [updated]
    with_pr = evolve(task, updated)
    if pr.state is PrState.MERGED:
        return [
            updated,
            TaskCompleted(
                **with_pr.envelope(now, actor),
                receipt=None,
            ),
        ]
    if pr.state is PrState.CLOSED:
        return [
            updated,
            *fail(
                with_pr, FailureReason.PR_CLOSED, "pull request closed unmerged", now, actor, policy
            ),
        ]
    return [updated]


def timeout_of(task: Task, default: timedelta) -> timedelta:
    return timedelta(seconds=task.timeout_secs) if task.timeout_secs > 0 else default


def _require(task: Task, states: frozenset[TaskState] | set[TaskState], action: str) -> None:
    if task.state not in states:
        raise InvalidTransition(task.task_id, task.state, action)


def _pr_number(url: str) -> int | None:
    tail = url.rstrip("/").rsplit("/", 1)[-1]
    return int(tail) if tail.isdigit() and len(tail) < 10 else None
