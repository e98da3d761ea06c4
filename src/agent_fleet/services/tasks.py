"""Task use cases: create, read, operator actions, and what agents report."""

import secrets
import uuid
from dataclasses import dataclass, field

from agent_fleet.domain import holds
from agent_fleet.domain import task as task_model
from agent_fleet.domain.errors import (
    AgentNotFound,
    AgentUnavailable,
    InvalidInput,
    PullRequestRefused,
)
from agent_fleet.domain.events import TaskEvent
from agent_fleet.domain.ids import AgentId, Lease, TaskId
from agent_fleet.domain.states import (
    HELD_STATES,
    AgentStatus,
    ExecutionMode,
    FailureReason,
    TaskState,
)
from agent_fleet.domain.task import NewTask, Task
from agent_fleet.domain.values import Receipt, Source
from agent_fleet.ports.queries import RecordedEvent, TaskQuery
from agent_fleet.services.budgets import daily_hold
from agent_fleet.services.commit import decide_task, load_task, tell_waiters
from agent_fleet.services.context import Context, append
from agent_fleet.services.pulls import PullRequestOpener
from agent_fleet.services.receipts import check_receipt

OPERATOR = "operator"


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateTask:
    title: str
    prompt: str
    required_capabilities: tuple[str, ...]
    execution_mode: ExecutionMode = ExecutionMode.UNDECIDED
    max_retries: int | None = None
    timeout_secs: int | None = None
    priority: int = 0
    source: Source = field(default_factory=Source)


def new_task_id() -> TaskId:
    return TaskId(str(uuid.uuid4()))


def new_lease() -> Lease:
    return Lease(secrets.token_hex(16))


class TaskService:
    def __init__(self, ctx: Context, pulls: PullRequestOpener | None = None) -> None:
        self._ctx = ctx
        self._pulls = pulls or PullRequestOpener(ctx.forge)

    async def create(
        self, cmd: CreateTask, actor: str = OPERATOR, task_id: TaskId | None = None
    ) -> Task:
        options = self._ctx.options
        new = NewTask(
            task_id=task_id or new_task_id(),
            title=cmd.title,
            prompt=cmd.prompt,
            required_capabilities=tuple(dict.fromkeys(cmd.required_capabilities)),
            execution_mode=cmd.execution_mode,
            priority=cmd.priority,
            max_retries=(
                options.default_max_retries if cmd.max_retries is None else cmd.max_retries
            ),
            timeout_secs=cmd.timeout_secs or int(options.default_timeout.total_seconds()),
            source=cmd.source,
        )
        now = self._ctx.clock.now()
        events = task_model.create(new, now, actor)
        events += await daily_hold(self._ctx, task_model.after(None, events), now, actor)
        await append(self._ctx, events)
        task = task_model.after(None, events)
        tell_waiters(self._ctx, None, task)
        return task

    async def get(self, task_id: str) -> Task:
        return await load_task(self._ctx, task_id)

    async def lookup(self, task_id: str) -> Task | None:
        return await self._ctx.store.get_task(TaskId(task_id))

    async def find(self, query: TaskQuery) -> list[Task]:
        return await self._ctx.store.list_tasks(query)

    async def events(self, task_id: str) -> list[RecordedEvent]:
        await load_task(self._ctx, task_id)
        return await self._ctx.store.stream_events(task_id)

    async def events_after(self, task_id: str, version: int, limit: int) -> list[RecordedEvent]:
        """A page of the task's history after `version`, oldest first."""
        await load_task(self._ctx, task_id)
        return await self._ctx.store.stream_events_after(task_id, version, limit)

    async def events_before(
        self, task_id: str, version: int | None, limit: int
    ) -> list[RecordedEvent]:
        """The last `limit` events before `version` (None: the newest), oldest first."""
        await load_task(self._ctx, task_id)
        return await self._ctx.store.stream_events_before(task_id, version, limit)

    async def assign(self, task_id: str, agent_id: str, actor: str = OPERATOR) -> Task:
        """An operator's explicit assignment; capacity is the operator's call."""
        agent = await self._ctx.store.get_agent(AgentId(agent_id))
        if agent is None:
            raise AgentNotFound(agent_id)
        if agent.status is not AgentStatus.ONLINE:
            raise AgentUnavailable(agent_id, agent.status)
        now = self._ctx.clock.now()
        lease = new_lease()
        return await decide_task(
            self._ctx,
            task_id,
            lambda t: task_model.assign(t, agent.agent_id, agent.host_id, lease, now, actor),
        )

    async def retry(self, task_id: str, actor: str = OPERATOR) -> Task:
        """A failed task's next attempt; a held task's release (the operator's override)."""
        now = self._ctx.clock.now()

        def decide(t: Task) -> list[TaskEvent]:
            if t.hold is not None:
                return holds.release(t, now, actor, manual=True)
            return task_model.retry(t, now, actor, manual=True)

        return await decide_task(self._ctx, task_id, decide)

    async def cancel(self, task_id: str, actor: str = OPERATOR, message: str = "") -> Task:
        now = self._ctx.clock.now()
        text = message or f"cancelled by {actor}"
        return await decide_task(
            self._ctx, task_id, lambda t: task_model.cancel(t, text, now, actor)
        )

    async def report_status(
        self,
        task_id: str,
        agent_id: str,
        lease: str | None,
        state: TaskState,
        message: str | None,
        progress: float | None,
    ) -> tuple[Task, bool]:
        """An agent's status report. Returns the task and whether the agent must stop."""
        task = await load_task(self._ctx, task_id)
        task_model.check_holder(task, agent_id, lease)
        if not task.is_held:
            # Cancelled, timed out or otherwise over: tell the process to stop.
            return task, True
        now = self._ctx.clock.now()
        options = self._ctx.options

        def decide(t: Task) -> list[TaskEvent]:
            task_model.check_holder(t, agent_id, lease)
            if not t.is_held:
                return []
            if state is TaskState.FAILED:
                reason_text = message or "agent reported failure"
                return task_model.fail(
                    t, FailureReason.ERROR, reason_text, now, agent_id, options.retry
                )
            return task_model.report_progress(t, message, progress, now, agent_id)

        after = await decide_task(self._ctx, task_id, decide, loaded=task)
        must_stop = after.state not in HELD_STATES or after.lease != task.lease
        return after, must_stop

    async def complete(self, task_id: str, receipt: Receipt) -> Task:
        if receipt.task_id != task_id:
            raise InvalidInput("task_id", "the receipt names another task")
        now = self._ctx.clock.now()
        task = await load_task(self._ctx, task_id)
        task_model.check_holder(task, receipt.agent_id, receipt.lease)
        if not task.is_held and _same_receipt(task, receipt):
            return task  # a repeated delivery of the receipt that ended this attempt
        verdict = await check_receipt(task, receipt, self._ctx.forge)
        if not verdict.valid:
            return await decide_task(
                self._ctx,
                task_id,
                lambda t: task_model.fail(
                    t,
                    FailureReason.RECEIPT_INVALID,
                    verdict.reason,
                    now,
                    receipt.agent_id,
                    self._ctx.options.retry,
                    receipt=receipt,
                ),
                loaded=task,
            )
        try:
            # Only for the attempt that still holds the task: a late receipt opens nothing.
            opened = await self._pulls.open_for(task, receipt) if task.is_held else None
        except PullRequestRefused as e:
            refused = str(e)
            return await decide_task(
                self._ctx,
                task_id,
                lambda t: task_model.fail(
                    t,
                    FailureReason.ERROR,
                    refused,
                    now,
                    receipt.agent_id,
                    self._ctx.options.retry,
                    receipt=receipt,
                ),
                loaded=task,
            )
        return await decide_task(
            self._ctx,
            task_id,
            lambda t: task_model.accept_receipt(
                t, receipt, now, receipt.agent_id, self._ctx.options.retry, opened
            ),
            loaded=task,
        )

    async def release_held(self, held: list[Task], message: str, actor: str) -> None:
        """Take back every task a departed agent held (deregistration, silence): an
        unstarted assignment is released to the queue, a started one is agent_lost."""
        now = self._ctx.clock.now()
        for task in held:
            holder = task.agent_id

            def decide(t: Task, holder: str | None = holder) -> list[TaskEvent]:
                if not t.is_held or t.agent_id != holder:
                    return []
                return task_model.take_back(t, message, now, actor, self._ctx.options.retry)

            await decide_task(self._ctx, task.task_id, decide)


def _same_receipt(task: Task, receipt: Receipt) -> bool:
    previous = task.receipt
    return (
        previous is not None
        and previous.agent_id == receipt.agent_id
        and (receipt.lease is None or previous.lease == receipt.lease)
    )
