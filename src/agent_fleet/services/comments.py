"""Progress comments on the Forgejo issue behind a task, posted once each.

The duty follows the event log from a stored cursor. Each comment carries a hidden
marker naming the event it reports; before posting, the issue's comments are searched
for that marker, so a crash between posting and moving the cursor, or two replicas
doing the same work, never posts it twice.
"""

from collections.abc import Callable
from enum import StrEnum

import structlog

from agent_fleet.domain.events import (
    AnyEvent,
    TaskAgentLost,
    TaskAssigned,
    TaskCompleted,
    TaskFailed,
    TaskRetried,
    TaskReviewPending,
)
from agent_fleet.domain.task import Task
from agent_fleet.domain.values import Receipt
from agent_fleet.ports.forge import Forge
from agent_fleet.services.context import Context

log = structlog.get_logger("agent_fleet.comments")
CURSOR = "forgejo-issue-comments"
BATCH = 200
MAX_TEXT = 1500


class CommentOn(StrEnum):
    PICKED_UP = "picked_up"
    PR_OPENED = "pr_opened"
    COMPLETED = "completed"
    FAILED = "failed"
    RETRIED = "retried"


def marker(seq: int) -> str:
    return f"<!-- agent-fleet event {seq} -->"


def comment_text(event: AnyEvent, task: Task) -> tuple[CommentOn, str] | None:
    """What to tell the issue about this event, or None. Pure: no I/O."""
    match event:
        case TaskAssigned():
            return CommentOn.PICKED_UP, (
                f"🤖 Picked up by agent `{event.agent_id}` (attempt {event.attempt + 1}). "
                f"It works on branch `{task.branch_name}`."
            )
        case TaskReviewPending():
            return CommentOn.PR_OPENED, (
                f"🔍 Pull request {event.pr.url} is ready for review, from branch "
                f"`{task.branch_name}`{_files(event.receipt)}. Merging it completes task "
                f"`{task.task_id}`.\n\n{_quote(event.receipt.summary)}"
            )
        case TaskCompleted():
            summary = event.receipt.summary if event.receipt else ""
            link = f" with pull request {task.pr.url}" if task.pr else ""
            return CommentOn.COMPLETED, (
                f"✅ Completed{link} (branch `{task.branch_name}`).\n\n{_quote(summary)}"
            )
        case TaskFailed():
            then = "It will be retried." if event.retry_at else "No retry will follow."
            return CommentOn.FAILED, (
                f"❌ Attempt {task.attempt + 1} failed (`{event.reason}`). {then}\n\n"
                f"{_quote(event.message)}"
            )
        case TaskAgentLost():
            then = "It will be retried." if event.retry_at else "No retry will follow."
            return CommentOn.FAILED, (
                f"⚠️ Attempt {task.attempt + 1} lost its agent (`agent_lost`). {then}\n\n"
                f"{_quote(event.message)}"
            )
        case TaskRetried() if event.review:
            return CommentOn.RETRIED, (
                f"🔁 Sent back to the agent for the changes requested in review "
                f"(round {task.review_rounds}): attempt {event.attempt + 1}."
            )
        case TaskRetried():
            how = "by hand" if event.manual else "automatically"
            return CommentOn.RETRIED, f"🔁 Retrying {how}: attempt {event.attempt + 1}."
        case _:
            return None


def _files(receipt: Receipt) -> str:
    files = receipt.files_changed()
    if not files:
        return ""
    return f" ({len(files)} file{'s' if len(files) != 1 else ''} changed in this attempt)"


def _quote(text: str) -> str:
    text = text.strip()
    if not text:
        return ""
    if len(text) > MAX_TEXT:
        text = text[:MAX_TEXT] + "…"
    return "\n".join(f"> {line}" for line in text.splitlines())


class IssueComments:
    def __init__(
        self,
        ctx: Context,
        forge: Forge,
        comment_on: frozenset[CommentOn],
        scrub: Callable[[str], str],
    ) -> None:
        self._ctx = ctx
        self._forge = forge
        self._on = comment_on
        self._scrub = scrub

    async def tick(self) -> int:
        """Post what the events since the cursor call for; stop at the first forge error."""
        store = self._ctx.store
        posted = 0
        after = await store.read_cursor(CURSOR)
        async for recorded in store.iter_events(batch=BATCH, after=after):
            task = await self._forge_task(recorded.event)
            said = comment_text(recorded.event, task) if task is not None else None
            if task is not None and said is not None and said[0] in self._on:
                posted += await self._post_once(task, recorded.seq, said[1])
            await store.advance_cursor(CURSOR, recorded.seq)
        return posted

    async def _forge_task(self, event: AnyEvent) -> Task | None:
        if not isinstance(
            event,
            TaskAssigned
            | TaskReviewPending
            | TaskCompleted
            | TaskFailed
            | TaskAgentLost
            | TaskRetried,
        ):
            return None
        task = await self._ctx.store.get_task(event.stream_id)  # type: ignore[arg-type]
        if task is None or task.source.kind != "forgejo" or task.source.issue_number is None:
            return None
        return task

    async def _post_once(self, task: Task, seq: int, text: str) -> int:
        repo, number = task.source.repo, task.source.issue_number
        assert repo is not None and number is not None  # _forge_task checked
        tag = marker(seq)
        if any(tag in body for body in await self._forge.comment_bodies(repo, number)):
            return 0  # posted before the cursor moved (a crash, another replica)
        if not await self._forge.comment(repo, number, f"{self._scrub(text)}\n\n{tag}"):
            log.warning("issue gone, comment dropped", task_id=task.task_id, issue=number)
            return 0
        log.info("issue comment posted", task_id=task.task_id, repo=repo, issue=number)
        return 1
