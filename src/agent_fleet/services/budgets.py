"""Daily repository budgets: a repository's spend today, new tasks held past it, and
their release when the next UTC day comes. (A task's own budget is the retry policy's:
see `domain/task.py` `fail`.)"""

from datetime import datetime

from agent_fleet.domain import holds
from agent_fleet.domain.budget import Spend, day_start, spend_of
from agent_fleet.domain.errors import FleetError
from agent_fleet.domain.events import TaskEvent
from agent_fleet.domain.task import Task
from agent_fleet.services.commit import decide_task
from agent_fleet.services.context import Context

ACTOR = "loop:holds"
BATCH = 100


async def repo_spend_today(ctx: Context, repo: str, now: datetime) -> Spend:
    """What the receipts of `repo`'s tasks reported since UTC midnight."""
    received = await ctx.store.repo_receipts_since(repo, day_start(now))
    return spend_of(r.event for r in received)


async def daily_hold(ctx: Context, task: Task, now: datetime, actor: str) -> list[TaskEvent]:
    """The hold a new task gets when its repository has spent today's budget, else nothing."""
    repo = task.source.repo
    limit = ctx.options.daily_budgets.limit_for(repo) if repo else None
    if repo is None or limit is None:
        return []
    spent = await repo_spend_today(ctx, repo, now)
    return holds.hold_for_budget(task, spent, limit, now, actor)


class HoldReleases:
    """The duty that releases held tasks whose day has come (replica-safe: each release
    is a versioned append, so two replicas releasing one task append it once)."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    async def tick(self) -> int:
        now = self._ctx.clock.now()
        released = 0
        for task in await self._ctx.store.holds_due(now, BATCH):

            def decide(t: Task) -> list[TaskEvent]:
                if not holds.is_release_due(t, now):
                    return []
                return holds.release(t, now, ACTOR, manual=False)

            try:
                after = await decide_task(self._ctx, task.task_id, decide)
            except FleetError:
                continue  # moved on meanwhile (cancelled, assigned by hand)
            released += int(after.version != task.version)
        return released
