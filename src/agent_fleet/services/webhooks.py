"""Forge events → task commands: labels make and re-route tasks, PRs move them along."""

from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from agent_fleet.domain import task as task_model
from agent_fleet.domain.errors import FleetError
from agent_fleet.domain.events import TaskEvent
from agent_fleet.domain.ids import TaskId
from agent_fleet.domain.states import FINAL_STATES, RETRYABLE_STATES, PrState, TaskState
from agent_fleet.domain.task import Task
from agent_fleet.domain.values import PullRequest, Source
from agent_fleet.ports.forge import Forge, IssueEvent, PullRequestEvent
from agent_fleet.ports.queries import TaskQuery
from agent_fleet.services.commit import decide_task
from agent_fleet.services.context import Context
from agent_fleet.services.forge_prompt import issue_prompt, review_prompt
from agent_fleet.services.tasks import CreateTask, TaskService, new_task_id

log = structlog.get_logger("agent_fleet.webhooks")
BRANCH_PREFIX = "task/"
IGNORED = "ignored"
AGENT_LABEL = "agent:"
PRIORITY_LABELS = {"priority:high": 10, "priority:low": -10}
PERMISSION_CACHE = timedelta(seconds=60)
#: An issue has one live task at a time; this bounds the history read to find it.
ISSUE_TASKS_MAX = 1000


def not_the_tasks_pr(task: Task, pr: PullRequestEvent) -> str | None:
    """Why a PR from `task/<id>` does not speak for that task, or None when it does: it
    must be in the task's own repository, from a branch of that repository (a fork's
    `head.label` is the bare branch name, so the head's repository is what tells), and
    be the PR recorded for the task (from its receipt, or the first one opened)."""
    repo = task.source.repo
    if repo is None:
        return "the task names no repository"
    if pr.repo.lower() != repo.lower():
        return f"the pull request is in {pr.repo}, not {repo}"
    if pr.head_repo.lower() != repo.lower():
        return f"the pull request comes from {pr.head_repo or 'another repository'} (a fork)"
    if task.pr is not None and task.pr.number is not None and task.pr.number != pr.number:
        return f"the task's pull request is #{task.pr.number}, not #{pr.number}"
    return None


@dataclass(frozen=True, slots=True)
class IssueLabels:
    """What the `agent:` and `priority:` labels of an issue ask for."""

    capabilities: tuple[str, ...]
    priority: int

    @property
    def wants_agent(self) -> bool:
        return bool(self.capabilities)


def read_labels(labels: tuple[str, ...]) -> IssueLabels:
    names = [name.strip() for name in labels]
    capabilities = tuple(
        dict.fromkeys(
            n[len(AGENT_LABEL) :]
            for n in names
            if n.startswith(AGENT_LABEL) and len(n) > len(AGENT_LABEL)
        )
    )
    priority = next((PRIORITY_LABELS[n] for n in names if n in PRIORITY_LABELS), 0)
    return IssueLabels(capabilities=capabilities, priority=priority)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a delivery did, for the reply and the logs."""

    result: str
    task_id: str | None = None

    @property
    def is_ignored(self) -> bool:
        return self.result.startswith(IGNORED)

    @property
    def reason(self) -> str:
        return self.result.removeprefix(IGNORED).removeprefix(":").strip()


class WebhookService:
    def __init__(
        self,
        ctx: Context,
        tasks: TaskService,
        allowed_repos: list[str],
        forge: Forge | None = None,
        max_review_rounds: int = 3,
    ) -> None:
        self._ctx = ctx
        self._max_review_rounds = max_review_rounds
        self._tasks = tasks
        self._allowed = set(allowed_repos)
        self._forge = forge
        self._writers: dict[tuple[str, str], tuple[bool, datetime]] = {}

    async def may_trigger(self, repo: str, user: str) -> bool:
        """Only people who can write to the repo set agents to work (cached briefly)."""
        if self._forge is None:
            return True  # no API configured: labelling already needs issue write access
        now = self._ctx.clock.now()
        cached = self._writers.get((repo, user))
        if cached is not None and cached[1] > now:
            return cached[0]
        allowed = await self._forge.can_write(repo, user)
        self._writers[(repo, user)] = (allowed, now + PERMISSION_CACHE)
        return allowed

    async def handle(self, event: IssueEvent | PullRequestEvent, actor: str) -> Outcome:
        if self._allowed and event.repo not in self._allowed:
            outcome = Outcome("ignored: repository not in allowed_repos")
        elif isinstance(event, IssueEvent):
            outcome = await self._issue(event, actor)
        else:
            outcome = await self._pull_request(event, actor)
        if outcome.is_ignored:
            log.info(
                "webhook ignored",
                kind=type(event).__name__,
                repo=event.repo[:200],
                number=event.number,
                sender=event.sender[:100],
                reason=outcome.reason,
                task_id=outcome.task_id,
            )
        return outcome

    # --- issues -------------------------------------------------------------------

    async def _issue(self, issue: IssueEvent, actor: str) -> Outcome:
        if issue.is_pull:
            return Outcome("ignored: a pull request's issue event")
        live = await self.live_task(issue.repo, issue.number)
        wanted = read_labels(issue.labels)
        closing = issue.action == "closed" or issue.state == "closed"
        if closing or issue.action == "label_cleared" or not wanted.wants_agent:
            if live is None:
                return Outcome("ignored: no agent label and no task")
            why = f"issue #{issue.number} {issue.action}"
            await self._tasks.cancel(live.task_id, actor, why)
            return Outcome("cancelled", live.task_id)
        if not await self.may_trigger(issue.repo, issue.sender):
            return Outcome(f"ignored: {issue.sender or 'the sender'} has no write access")
        if live is None:
            return await self.create_for_issue(issue, wanted, actor)
        if live.state not in (TaskState.CREATED, TaskState.ASSIGNED):
            return Outcome("unchanged: the task has started", live.task_id)
        now = self._ctx.clock.now()

        def reroute(t: Task) -> list[TaskEvent]:
            if t.state not in (TaskState.CREATED, TaskState.ASSIGNED):
                return []
            return task_model.reroute(t, wanted.capabilities, wanted.priority, now, actor)

        after = await decide_task(self._ctx, live.task_id, reroute)
        changed = after.version != live.version
        return Outcome("rerouted" if changed else "unchanged", live.task_id)

    async def create_for_issue(self, issue: IssueEvent, wanted: IssueLabels, actor: str) -> Outcome:
        task_id = new_task_id()
        created = await self._tasks.create(
            CreateTask(
                title=issue.title[:500] or f"{issue.repo}#{issue.number}",
                prompt=issue_prompt(issue.repo, issue.number, issue.title, issue.body, task_id),
                required_capabilities=wanted.capabilities,
                priority=wanted.priority,
                source=Source(
                    kind="forgejo", repo=issue.repo, issue_number=issue.number, url=issue.url
                ),
            ),
            actor=actor,
            task_id=task_id,
        )
        return Outcome("created", created.task_id)

    async def live_task(self, repo: str, number: int) -> Task | None:
        """The issue's one live task: not final, and not failed for good."""
        for task in await self._issue_tasks(repo, number):
            if task.state in FINAL_STATES:
                continue
            if task.state in RETRYABLE_STATES and task.retry_at is None:
                continue
            return task
        return None

    async def _issue_tasks(self, repo: str, number: int) -> list[Task]:
        query = TaskQuery(repo=repo, issue_number=number, limit=ISSUE_TASKS_MAX)
        return await self._ctx.store.list_tasks(query)

    async def has_any_task(self, repo: str, number: int) -> bool:
        """Whether the issue ever had a task (live or ended)."""
        return bool(await self._issue_tasks(repo, number))

    # --- pull requests --------------------------------------------------------------

    async def _pull_request(self, pr: PullRequestEvent, actor: str) -> Outcome:
        if not pr.branch.startswith(BRANCH_PREFIX):
            return Outcome("ignored: not a task branch")
        task = await self._ctx.store.get_task(TaskId(pr.branch[len(BRANCH_PREFIX) :]))
        if task is None:
            return Outcome("ignored: no such task")
        why = not_the_tasks_pr(task, pr)
        if why is not None:
            return Outcome(f"ignored: {why}", task.task_id)
        if pr.changes_requested is not None:
            return await self._changes_requested(task.task_id, pr, actor)
        if pr.merged:
            state = PrState.MERGED
        else:
            state = PrState.CLOSED if pr.state == "closed" else PrState.OPEN
        if state is PrState.CLOSED and not await self.may_trigger(pr.repo, pr.sender):
            return Outcome(
                f"ignored: {pr.sender or 'the sender'} has no write access", task.task_id
            )
        update = PullRequest(url=pr.url, number=pr.number, state=state)
        now, policy = self._ctx.clock.now(), self._ctx.options.retry

        def decide(t: Task) -> list[TaskEvent]:
            if not_the_tasks_pr(t, pr) is not None:
                return []  # another PR was recorded meanwhile
            return task_model.update_pr(t, update, now, actor, policy)

        after = await decide_task(self._ctx, task.task_id, decide)
        return Outcome(f"pull request {state.value}", after.task_id)

    async def _changes_requested(
        self, task_id: TaskId, pr: PullRequestEvent, actor: str
    ) -> Outcome:
        if not await self.may_trigger(pr.repo, pr.sender):
            return Outcome(f"ignored: {pr.sender or 'the reviewer'} has no write access")
        now = self._ctx.clock.now()
        review = pr.changes_requested or "(no text)"
        rounds = self._max_review_rounds

        def decide(t: Task) -> list[TaskEvent]:
            if t.state is not TaskState.REVIEW_PENDING or not_the_tasks_pr(t, pr) is not None:
                return []
            prompt = review_prompt(t.prompt, pr.url, pr.sender, review)
            budget = self._ctx.options.retry.budget
            return task_model.send_back(t, prompt, now, actor, rounds, budget)

        try:
            before = await self._ctx.store.get_task(task_id)
            after = await decide_task(self._ctx, task_id, decide)
        except FleetError:
            return Outcome("ignored: no such task")
        if before is not None and after.version != before.version:
            return Outcome("sent back for changes", after.task_id)
        return Outcome(
            "unchanged: not under review, or review rounds or budget used up", after.task_id
        )
