"""The background duties: timeouts, silent agents, due retries. Each is one `tick`."""

from agent_fleet.domain import agent as agent_model
from agent_fleet.domain import task as task_model
from agent_fleet.domain.errors import ConcurrencyConflict, FleetError
from agent_fleet.domain.events import TaskEvent
from agent_fleet.domain.policies import is_timed_out
from agent_fleet.domain.states import FailureReason, TaskState
from agent_fleet.domain.task import Decision, Task
from agent_fleet.services.commit import decide_task
from agent_fleet.services.context import Context, append
from agent_fleet.services.tasks import TaskService

BATCH = 100


class Sweeper:
    def __init__(self, ctx: Context, tasks: TaskService) -> None:
        self._ctx = ctx
        self._tasks = tasks
        self._started = ctx.clock.now()

    async def expire_timeouts(self) -> int:
        """Fail every held task past its deadline with reason `timeout`."""
        now = self._ctx.clock.now()
        expired = 0
        for task in await self._ctx.store.timed_out_tasks(now, BATCH):

            def decide(t: Task, lease: str | None = task.lease) -> list[TaskEvent]:
                if t.host_id is not None and t.state is TaskState.ASSIGNED:
                    # The dispatcher is launching it (bounded), or our crash cut the launch
                    # short, which the dispatcher finds and does not count: not a timeout.
                    return []
                # Re-check on the fresh state: the attempt may have ended meanwhile.
                if t.lease != lease or not is_timed_out(
                    t.assigned_at, task_model.timeout_of(t, self._ctx.options.default_timeout), now
                ):
                    return []
                message = f"no result within {t.timeout_secs}s"
                return task_model.fail(
                    t, FailureReason.TIMEOUT, message, now, "loop:timeouts", self._ctx.options.retry
                )

            if await self._apply(task, decide):
                expired += 1
        return expired

    async def detect_lost_agents(self) -> int:
        """Agents silent past interval × threshold go offline; their tasks are agent_lost."""
        now = self._ctx.clock.now()
        if now - self._started < self._ctx.options.heartbeat_timeout:
            # Just started: agents could not beat while we were down. Give them one
            # full timeout to reach us before calling anyone lost.
            return 0
        cutoff = now - self._ctx.options.heartbeat_timeout
        lost = 0
        for agent in await self._ctx.store.stale_agents(cutoff, BATCH):
            missed = self._ctx.options.heartbeat_threshold
            events = agent_model.go_offline(
                agent, f"missed {missed} heartbeats", now, "loop:heartbeats"
            )
            try:
                await append(self._ctx, events)
            except ConcurrencyConflict:
                continue  # it changed meanwhile (a heartbeat, a re-register): next tick decides
            self._ctx.signal.wake_agent(agent.agent_id)  # a long-poll still open ends now
            held = await self._ctx.store.held_tasks(agent.agent_id)
            await self._tasks.release_held(
                held, f"agent {agent.agent_id} stopped heartbeating", actor="loop:heartbeats"
            )
            lost += 1
        return lost

    async def release_orphans(self) -> int:
        """No task waits on an absent agent: held tasks whose agent is not online (a claim
        that raced its going, a release that failed) go back, unstarted ones unspent."""
        now = self._ctx.clock.now()
        released = 0
        for task in await self._ctx.store.orphaned_tasks(BATCH):
            holder = task.agent_id
            agent = await self._ctx.store.get_agent(holder) if holder else None
            if agent is not None and agent_model.can_take_work(agent):
                continue  # back online since the query
            status = agent.status if agent is not None else "unknown"
            message = f"agent {holder} is {status}"

            def decide(
                t: Task, lease: str | None = task.lease, why: str = message
            ) -> list[TaskEvent]:
                if t.lease != lease or not t.is_held:
                    return []
                return task_model.take_back(t, why, now, "loop:orphans", self._ctx.options.retry)

            if await self._apply(task, decide):
                released += 1
        return released

    async def run_due_retries(self) -> int:
        now = self._ctx.clock.now()
        retried = 0
        for task in await self._ctx.store.retries_due(now, BATCH):

            def decide(t: Task) -> list[TaskEvent]:
                if not task_model.is_retry_due(t, now):
                    return []
                return task_model.retry(t, now, "loop:retries", manual=False)

            if await self._apply(task, decide):
                retried += 1
        return retried

    async def _apply(self, task: Task, decide: Decision) -> bool:
        try:
            after = await decide_task(self._ctx, task.task_id, decide)
        except FleetError:
            return False  # another writer moved it on; nothing to do for this one
        return after.version != task.version
