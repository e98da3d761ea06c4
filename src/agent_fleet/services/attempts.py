"""Decisions on an attempt the dispatcher placed on a host, applied only while that
attempt still holds its task (not cancelled, timed out or re-assigned meanwhile)."""

import structlog

from agent_fleet.domain import task as task_model
from agent_fleet.domain.errors import FleetError
from agent_fleet.domain.events import TaskEvent
from agent_fleet.domain.states import FailureReason, LossCause, TaskState
from agent_fleet.domain.task import Task
from agent_fleet.services.commit import decide_task
from agent_fleet.services.context import Context

log = structlog.get_logger("agent_fleet.dispatch")
ACTOR = "dispatcher"


class Attempts:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    async def start(self, task: Task) -> bool:
        now = self._ctx.clock.now()
        return await self._decide(
            task,
            lambda t: task_model.start(t, now, ACTOR) if t.state is TaskState.ASSIGNED else [],
        )

    async def fail(self, task: Task, reason: FailureReason, message: str) -> None:
        now, policy = self._ctx.clock.now(), self._ctx.options.retry
        await self._decide(task, lambda t: task_model.fail(t, reason, message, now, ACTOR, policy))

    async def lose(self, task: Task, message: str, cause: LossCause | None = None) -> None:
        now, policy = self._ctx.clock.now(), self._ctx.options.retry
        await self._decide(
            task, lambda t: task_model.lose(t, message, now, ACTOR, policy, cause=cause)
        )

    async def _decide(self, task: Task, decision: task_model.Decision) -> bool:
        """Apply `decision` only while the attempt we looked at is still the held one;
        True when it changed the task."""
        decided = False

        def guarded(t: Task) -> list[TaskEvent]:
            nonlocal decided
            if t.lease != task.lease or not t.is_held:
                return []
            events = decision(t)
            decided = bool(events)
            return events

        try:
            await decide_task(self._ctx, task.task_id, guarded)
        except FleetError as e:
            log.info("decision skipped", task_id=task.task_id, error=str(e))
            return False
        return decided
