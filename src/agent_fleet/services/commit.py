"""Load → decide → append, retried on optimistic-concurrency conflicts."""

from datetime import datetime

from agent_fleet.domain import task as task_model
from agent_fleet.domain.errors import ConcurrencyConflict, TaskNotFound
from agent_fleet.domain.events import TaskEvent
from agent_fleet.domain.ids import TaskId
from agent_fleet.domain.matching import freed_holder, opening_of
from agent_fleet.domain.task import Decision, Task
from agent_fleet.services.context import Context, append

MAX_CONFLICT_RETRIES = 8


async def load_task(ctx: Context, task_id: str) -> Task:
    task = await ctx.store.get_task(TaskId(task_id))
    if task is None:
        raise TaskNotFound(task_id)
    return task


async def decide_task(
    ctx: Context, task_id: str, decision: Decision, loaded: Task | None = None
) -> Task:
    """Apply `decision` to the latest state of the task, reloading when another writer won.

    `loaded`: the task as the caller has just read it, for the first try (one read
    fewer); were it stale, the append's version check fails and the next try reloads."""
    for tries_left in reversed(range(MAX_CONFLICT_RETRIES)):
        task = loaded if loaded is not None else await load_task(ctx, task_id)
        loaded = None
        events = decision(task)
        if not events:
            return task
        events = with_due_retry(task, events, ctx.clock.now())
        try:
            await append(ctx, events)
        except ConcurrencyConflict:
            if not tries_left:
                raise  # the last writer to win names the stream and version
            continue
        after = task_model.after(task, events)
        tell_waiters(ctx, task, after)
        return after
    raise AssertionError("unreachable: the last try returns or raises")


def with_due_retry(task: Task, events: list[TaskEvent], now: datetime) -> list[TaskEvent]:
    """A failure whose retry is already due (no backoff) retries in the same commit."""
    after = task_model.after(task, events)
    if task_model.is_retry_due(after, now):
        return [*events, *task_model.retry(after, now, actor="policy:auto-retry", manual=False)]
    return events


def tell_waiters(ctx: Context, before: Task | None, after: Task) -> None:
    """Wake who a change concerns: one claimer for a task that became claimable, the
    holder's own long-polls for a slot it freed (watchers hear both)."""
    holder = freed_holder(before, after)
    if holder is not None:
        ctx.signal.wake_agent(holder)
    opening = opening_of(before, after)
    if opening is not None or holder is not None:
        ctx.signal.notify(opening)
