"""Receipt validation: a claimed pull request must exist in the task's repo and belong to it."""

import re
from dataclasses import dataclass

from agent_fleet.domain.task import Task
from agent_fleet.domain.values import Receipt
from agent_fleet.ports.forge import Forge

_PR_PATH = re.compile(r"^https?://[^/]+/(?P<repo>[^/\s]+/[^/\s]+)/pulls?/(?P<number>\d{1,9})/?$")


@dataclass(frozen=True, slots=True)
class ReceiptCheck:
    valid: bool
    reason: str = ""


async def check_receipt(task: Task, receipt: Receipt, forge: Forge | None) -> ReceiptCheck:
    """A completed receipt naming a PR, for any task that names a repository (whatever
    created it), is checked when the forge's API is configured.

    The PR must be in the task's repository and either come from the task's branch in
    that repository (not a fork's branch of the same name) or reference the task's
    issue. Forge errors propagate: the agent retries the delivery rather than the task
    failing for the forge's outage.
    """
    urls = receipt.pr_urls()
    repo = task.source.repo
    if forge is None or not repo or not urls:
        return ReceiptCheck(True)
    match = _PR_PATH.match(urls[0])
    if match is None:
        return ReceiptCheck(False, f"not a pull request URL: {urls[0][:200]}")
    if match["repo"].lower() != repo.lower():
        return ReceiptCheck(False, f"the pull request is in {match['repo']}, not {repo}")
    pr = await forge.pull_request_info(repo, int(match["number"]))
    if pr is None:
        return ReceiptCheck(False, f"pull request #{match['number']} does not exist")
    from_branch = pr.head_branch == task.branch_name and pr.head_repo.lower() == repo.lower()
    number = task.source.issue_number
    if from_branch or (number is not None and references_issue(pr.body, repo, number)):
        return ReceiptCheck(True)
    return ReceiptCheck(
        False,
        f"pull request #{pr.number} is from {pr.head_branch!r}"
        f"{f' of {pr.head_repo}' if pr.head_repo else ''}, not {task.branch_name!r} of "
        f"{repo}, and does not reference the issue",
    )


def references_issue(text: str, repo: str, number: int) -> bool:
    """Whether `text` names issue `number` of `repo` as a whole reference: `#12`,
    `owner/repo#12` or the issue's URL — never `#123`, `#12` inside another word, or
    `other/repo#12`."""
    n = int(number)
    own = re.escape(repo)
    patterns = (
        rf"(?<![\w#/.-])(?:{own})?#{n}(?![\w-])",  # #12, acme/widgets#12
        rf"/{own}/issues/{n}(?![\w-])",  # https://forge/acme/widgets/issues/12
    )
    return any(re.search(p, text, re.IGNORECASE) for p in patterns)
