"""Load → decide → append, retried on optimistic-concurrency conflicts."""

from datetime import datetime

from agent_fleet.domain import task as task_model
from agent_fleet.domain.errors import ConcurrencyConflict, TaskNotFound
from agent_fleet.domain.events import TaskEvent
from agent_fleet.domain.ids import TaskId
from agent_fleet.domain.states import HELD_STATES, TaskState
from agent_fleet.domain.task import Decision, Task
from agent_fleet.services.context import Context, append

MAX_CONFLICT_RETRIES = 8


async def load_task(ctx: Context, task_id: str) -> Task:
    task = await ctx.store.get_task(TaskId(task_id))
    if task is None:
        raise TaskNotFound(task_id)
    return task


async def decide_task(ctx: Context, task_id: str, decision: Decision) -> Task:
    """Apply `decision` to the latest state of the task, reloading when another writer won."""
    for _ in range(MAX_CONFLICT_RETRIES):
        task = await load_task(ctx, task_id)
        events = decision(task)
        if not events:
            return task
        events = with_due_retry(task, events, ctx.clock.now())
        try:
            await append(ctx, events)
        except ConcurrencyConflict:
            continue
        after = fold(task, events)
        if frees_work(task, after):
            ctx.signal.notify()
        return after
    raise ConcurrencyConflict(task_id, -1)


def fold(task: Task | None, events: list[TaskEvent]) -> Task:
    for event in events:
        task = task_model.evolve(task, event)
    assert task is not None  # callers always pass at least one event
    return task


def with_due_retry(task: Task, events: list[TaskEvent], now: datetime) -> list[TaskEvent]:
    """A failure whose retry is already due (no backoff) retries in the same commit."""
    after = fold(task, events)
    if task_model.is_retry_due(after, now):
        return [*events, *task_model.retry(after, now, actor="policy:auto-retry", manual=False)]
    return events


def frees_work(before: Task | None, after: Task) -> bool:
    """Waiting pullers should look again: a task became claimable or a slot freed up."""
    became_open = after.state is TaskState.CREATED and (
        before is None or before.state is not TaskState.CREATED or before.version != after.version
    )
    freed_slot = before is not None and before.state in HELD_STATES and not after.is_held
    return became_open or freed_slot
