"""Reconciliation with the forge: what a lost webhook would have done, done anyway.

Forgejo does not retry a failed delivery, and nothing is delivered to a service that
is down. So, on start and every few minutes: open issues with `agent:` labels that
never had a task get one (if whoever added the label may write to the repo), and
tasks waiting on review re-read their pull request's state.
"""

import structlog

from agent_fleet.domain import task as task_model
from agent_fleet.domain.errors import FleetError
from agent_fleet.domain.events import TaskEvent
from agent_fleet.domain.states import PrState, TaskState
from agent_fleet.domain.task import Decision, Task
from agent_fleet.domain.values import PullRequest
from agent_fleet.ports.forge import Forge, ForgeIssue, IssueEvent
from agent_fleet.ports.queries import TaskQuery
from agent_fleet.services.commit import decide_task
from agent_fleet.services.context import Context
from agent_fleet.services.webhooks import AGENT_LABEL, WebhookService, read_labels

log = structlog.get_logger("agent_fleet.reconcile")
ACTOR = "loop:reconcile"
REVIEW_BATCH = 500


class Reconciler:
    def __init__(
        self, ctx: Context, webhooks: WebhookService, forge: Forge, allowed_repos: list[str]
    ) -> None:
        self._ctx = ctx
        self._webhooks = webhooks
        self._forge = forge
        self._allowed = list(allowed_repos)

    async def tick(self) -> int:
        return await self.issues() + await self.reviews()

    async def issues(self) -> int:
        created = 0
        repos = self._allowed or await self._forge.repos()
        for repo in repos:
            for issue in await self._forge.open_issues(repo):
                created += await self._issue(issue)
        return created

    async def _issue(self, issue: ForgeIssue) -> int:
        wanted = read_labels(issue.labels)
        if not wanted.wants_agent:
            return 0
        if await self._webhooks.has_any_task(issue.repo, issue.number):
            return 0  # seen before: label changes since then arrive as webhooks
        who = await self._forge.labelled_by(issue.repo, issue.number, AGENT_LABEL)
        if who is None or not await self._webhooks.may_trigger(issue.repo, who):
            log.info("not picked up", repo=issue.repo, issue=issue.number, labelled_by=who)
            return 0
        event = IssueEvent(
            action="reconciled",
            repo=issue.repo,
            number=issue.number,
            title=issue.title,
            body=issue.body,
            url=issue.url,
            state="open",
            labels=issue.labels,
            sender=who,
        )
        outcome = await self._webhooks.create_for_issue(event, wanted, ACTOR)
        log.info(
            "task created by reconciliation",
            repo=issue.repo,
            issue=issue.number,
            task_id=outcome.task_id,
        )
        return 1

    async def reviews(self) -> int:
        changed = 0
        pending = await self._ctx.store.list_tasks(
            TaskQuery(state=TaskState.REVIEW_PENDING, limit=REVIEW_BATCH)
        )
        for task in pending:
            pr, repo = task.pr, task.source.repo
            if pr is None or pr.number is None or repo is None:
                continue
            info = await self._forge.pull_request_info(repo, pr.number)
            if info is None:
                continue
            state = (
                PrState.MERGED if info.merged else (PrState.CLOSED if info.closed else PrState.OPEN)
            )
            update = PullRequest(url=info.url or pr.url, number=info.number, state=state)
            try:
                after = await decide_task(self._ctx, task.task_id, self._follow_pr(update))
            except FleetError:
                continue
            changed += int(after.version != task.version)
        return changed

    def _follow_pr(self, update: PullRequest) -> Decision:
        now, policy = self._ctx.clock.now(), self._ctx.options.retry

        def decide(t: Task) -> list[TaskEvent]:
            if t.state is not TaskState.REVIEW_PENDING:
                return []
            return task_model.update_pr(t, update, now, ACTOR, policy)

        return decide
