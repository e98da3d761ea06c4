"""The assembled services of one orchestrator, and its background duties."""

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote

from agent_fleet.ports.forge import Forge
from agent_fleet.ports.hosts import HostRuns, HostSlot
from agent_fleet.services.agents import AgentService
from agent_fleet.services.budgets import HoldReleases
from agent_fleet.services.comments import CommentOn, IssueComments
from agent_fleet.services.context import Context
from agent_fleet.services.dequeue import DequeueService
from agent_fleet.services.dispatch import Dispatcher
from agent_fleet.services.insight import InsightService
from agent_fleet.services.loops import run_every
from agent_fleet.services.overview import OverviewService
from agent_fleet.services.pulls import PullRequestOpener
from agent_fleet.services.reconcile import Reconciler
from agent_fleet.services.sweeps import Sweeper
from agent_fleet.services.task_logs import TaskLogService
from agent_fleet.services.tasks import TaskService
from agent_fleet.services.webhooks import WebhookService


@dataclass(frozen=True, slots=True)
class Fleet:
    ctx: Context
    tasks: TaskService
    agents: AgentService
    dequeue: DequeueService
    sweeper: Sweeper
    task_logs: TaskLogService
    webhooks: WebhookService
    forge: Forge | None
    insight: InsightService
    overview: OverviewService
    holds: HoldReleases
    dispatcher: Dispatcher | None = None
    hosts: HostRuns | None = None
    comments: IssueComments | None = None
    reconciler: Reconciler | None = None

    @classmethod
    def assemble(
        cls,
        ctx: Context,
        allowed_repos: list[str] | None = None,
        hosts: HostRuns | None = None,
        slots: list[HostSlot] | None = None,
        comment_on: frozenset[CommentOn] = frozenset(CommentOn),
        scrub: Callable[[str], str] = lambda text: text,
        exclusive_store: bool = False,
        public_url: str | None = None,
    ) -> "Fleet":
        def task_url(task_id: str) -> str | None:
            return (
                f"{public_url.rstrip('/')}/tasks/{quote(task_id, safe='')}" if public_url else None
            )

        tasks = TaskService(ctx, PullRequestOpener(ctx.forge, scrub, task_url))
        agents = AgentService(ctx, tasks, frozenset(s.agent_id for s in slots or []))
        webhooks = WebhookService(
            ctx, tasks, allowed_repos or [], ctx.forge, ctx.options.max_review_rounds
        )
        forge = ctx.forge
        dispatcher = (
            Dispatcher(
                ctx,
                tasks,
                hosts,
                slots or [],
                ctx.options.keep_failed_workspaces_days,
                exclusive=exclusive_store,
            )
            if hosts is not None
            else None
        )
        return cls(
            ctx=ctx,
            tasks=tasks,
            agents=agents,
            dequeue=DequeueService(ctx, agents),
            sweeper=Sweeper(ctx, tasks),
            task_logs=TaskLogService(ctx),
            webhooks=webhooks,
            forge=forge,
            insight=InsightService(ctx),
            overview=OverviewService(ctx),
            holds=HoldReleases(ctx),
            dispatcher=dispatcher,
            hosts=hosts,
            comments=IssueComments(ctx, forge, comment_on, scrub) if forge else None,
            reconciler=Reconciler(ctx, webhooks, forge, allowed_repos or []) if forge else None,
        )

    async def run_background(self, stop: asyncio.Event) -> None:
        """Every duty in one TaskGroup: if one dies of a bug, all stop and the error surfaces."""
        every = self.ctx.options.sweep_interval
        async with asyncio.TaskGroup() as group:
            group.create_task(run_every("timeouts", self.sweeper.expire_timeouts, every, stop))
            group.create_task(run_every("heartbeats", self.sweeper.detect_lost_agents, every, stop))
            group.create_task(run_every("orphans", self.sweeper.release_orphans, every, stop))
            group.create_task(run_every("retries", self.sweeper.run_due_retries, every, stop))
            group.create_task(run_every("holds", self.holds.tick, every, stop))
            group.create_task(self.ctx.signal.run(stop))
            if self.dispatcher is not None:
                group.create_task(self.dispatcher.run(stop))
            options = self.ctx.options
            if self.comments is not None:
                comment = self.comments.tick
                group.create_task(run_every("comments", comment, options.comment_interval, stop))
            if self.reconciler is not None:
                reconcile, every_few_minutes = self.reconciler.tick, options.reconcile_interval
                group.create_task(run_every("reconcile", reconcile, every_few_minutes, stop))
