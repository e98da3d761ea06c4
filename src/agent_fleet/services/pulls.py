"""The server opens the task's one pull request for the branch its receipt says was pushed.

One PR per task, never two: the forge is asked for an open PR from `task/<id>` in the
task's repository before one is created, and a create the forge answers "exists"
(another replica, or a try that crashed between creating and recording it) is
resolved by finding it. The task records the PR when the receipt is accepted.
"""

from collections.abc import Callable

import structlog

from agent_fleet.domain.states import PrState, ReceiptStatus
from agent_fleet.domain.task import Task, is_from_issue
from agent_fleet.domain.values import PullRequest, Receipt
from agent_fleet.ports.forge import Forge, ForgePull

log = structlog.get_logger("agent_fleet.pulls")
MAX_SUMMARY_CHARS = 4000
MAX_TITLE_CHARS = 255


class PullRequestOpener:
    def __init__(
        self,
        forge: Forge | None,
        scrub: Callable[[str], str] = lambda text: text,
        task_url: Callable[[str], str | None] = lambda _task_id: None,
    ) -> None:
        self._forge = forge
        self._scrub = scrub
        self._task_url = task_url

    async def open_for(self, task: Task, receipt: Receipt) -> PullRequest | None:
        """The PR for a completed receipt that names the pushed `task/<id>` and no PR of
        its own, on a task whose PR is not yet open; None when there is nothing to open.
        Forge outages propagate (the receipt is delivered again later)."""
        repo = task.source.repo
        branch = receipt.pushed(task.branch_name)
        if self._forge is None or repo is None or branch is None:
            return None
        if receipt.status is not ReceiptStatus.COMPLETED or receipt.pr_urls():
            return None
        if task.pr is not None and task.pr.state is PrState.OPEN:
            return None  # a review round: the branch moved, the PR stays
        found = await self._forge.open_pull_from(repo, task.branch_name)
        if found is None:
            base = await self._forge.default_branch(repo)
            found = await self._forge.create_pull(
                repo,
                head=task.branch_name,
                base=base,
                title=self._title(task),
                body=self.body(task, receipt),
            )
            log.info("pull request opened", task_id=task.task_id, repo=repo, number=found.number)
        return _recorded(found)

    def _title(self, task: Task) -> str:
        title = " ".join(self._scrub(task.title).split()) or task.branch_name
        return title[:MAX_TITLE_CHARS]

    def body(self, task: Task, receipt: Receipt) -> str:
        summary = self._scrub(receipt.summary).strip()
        if len(summary) > MAX_SUMMARY_CHARS:
            summary = summary[:MAX_SUMMARY_CHARS] + "…"
        files = receipt.files_changed()
        branch = receipt.pushed(task.branch_name)
        sha = f" at `{branch.sha[:12]}`" if branch is not None and branch.sha else ""
        link = self._task_url(task.task_id)
        task_ref = f"[`{task.task_id}`]({link})" if link else f"`{task.task_id}`"
        lines = [summary or "(no summary)", "", f"**Files changed** ({len(files)} listed):"]
        lines += [f"- `{_code(path)}`" for path in files] or ["- (none listed)"]
        lines += ["", f"Agent Fleet task {task_ref}, branch `{task.branch_name}`{sha}."]
        if is_from_issue(task):
            lines += ["", f"Closes #{task.source.issue_number}"]
        return "\n".join(lines)


def _recorded(pull: ForgePull) -> PullRequest:
    return PullRequest(url=pull.url, number=pull.number, state=PrState.OPEN)


def _code(path: str) -> str:
    """A path inside inline code: backticks would end it early."""
    return path.replace("`", "'")
