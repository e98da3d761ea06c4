"""Receipt validation: a claimed pull request must exist in the task's repo and belong to it."""

import re
from dataclasses import dataclass

from agent_fleet.domain.task import Task
from agent_fleet.domain.values import Receipt
from agent_fleet.ports import Forge

_PR_PATH = re.compile(r"^https?://[^/]+/(?P<repo>[^/\s]+/[^/\s]+)/pulls?/(?P<number>\d{1,9})/?$")


@dataclass(frozen=True, slots=True)
class Verdict:
    valid: bool
    reason: str = ""


async def check_receipt(task: Task, receipt: Receipt, forge: Forge | None) -> Verdict:
    """Only a Forgejo task's completed receipt with a PR is checked, and only with the API set.

    The PR must be in the task's repository and come from the task's branch or
    reference its issue. Forge errors propagate: the agent retries the delivery
    rather than the task failing for the forge's outage.
    """
    urls = receipt.pr_urls()
    if forge is None or task.source.kind != "forgejo" or not task.source.repo or not urls:
        return Verdict(True)
    match = _PR_PATH.match(urls[0])
    if match is None:
        return Verdict(False, f"not a pull request URL: {urls[0][:200]}")
    if match["repo"].lower() != task.source.repo.lower():
        return Verdict(False, f"the pull request is in {match['repo']}, not {task.source.repo}")
    pr = await forge.pull_request_info(task.source.repo, int(match["number"]))
    if pr is None:
        return Verdict(False, f"pull request #{match['number']} does not exist")
    issue_ref = f"#{task.source.issue_number}" if task.source.issue_number else None
    if pr.head_branch == task.branch_name or (issue_ref and issue_ref in pr.body):
        return Verdict(True)
    return Verdict(
        False,
        f"pull request #{pr.number} is from {pr.head_branch!r}, not "
        f"{task.branch_name!r}, and does not reference the issue",
    )
