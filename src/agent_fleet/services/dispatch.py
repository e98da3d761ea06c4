"""ssh_cli: the `[[hosts]]` slots as agents, and placing open tasks on them.

A slot with room claims a task through the same atomic `claim_task` as a pull agent,
least loaded slot first; the run is launched beside the claims (launches are slow:
a clone), in the dispatcher's TaskGroup. Following the runs is `services/runs.py`.
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import datetime

import structlog

from agent_fleet.domain import agent as agent_model
from agent_fleet.domain.agent import Agent, Registration
from agent_fleet.domain.errors import AgentNotFound, AgentUnavailable, HostUnreachable, LaunchFailed
from agent_fleet.domain.matching import Capacity, least_loaded
from agent_fleet.domain.states import AgentMode, AgentStatus, ExecutionMode, FailureReason
from agent_fleet.domain.task import Task
from agent_fleet.ports.hosts import HostRuns, HostSlot, RunKey, RunOrder
from agent_fleet.ports.queries import AgentQuery
from agent_fleet.services.attempts import ACTOR, Attempts
from agent_fleet.services.context import Context, append
from agent_fleet.services.host_health import HostHealth
from agent_fleet.services.loops import run_every
from agent_fleet.services.runs import Launches, RunFollower
from agent_fleet.services.tasks import TaskService, new_lease

log = structlog.get_logger("agent_fleet.dispatch")

SSH_MODES = frozenset({ExecutionMode.SSH_CLI, ExecutionMode.UNDECIDED})


class Dispatcher:
    def __init__(
        self,
        ctx: Context,
        tasks: TaskService,
        runs: HostRuns,
        slots: Sequence[HostSlot],
        keep_failed_days: int,
        exclusive: bool = False,
    ) -> None:
        """`exclusive`: this process is the only orchestrator on its store (SQLite), so a
        held task whose run it is not launching and cannot find is lost at once; with
        replicas (PostgreSQL) another one may be launching it, so grace periods apply."""
        self._ctx = ctx
        self._tasks = tasks
        self._runs = runs
        self._slots = list(slots)
        self._health = HostHealth(dict.fromkeys(s.host_id for s in slots))
        self._launches = Launches()
        self._attempts = Attempts(ctx)
        self._group: asyncio.TaskGroup | None = None
        self.follower = RunFollower(
            ctx,
            tasks,
            runs,
            self._slots,
            self._health,
            self._launches,
            keep_failed_days=keep_failed_days,
            exclusive=exclusive,
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Slots registered, then placing tasks and following runs until `stop`; launches
        still in flight are waited for."""
        options = self._ctx.options
        await self.register_slots()
        async with self.launching(), asyncio.TaskGroup() as loops:
            wake = self._ctx.signal
            loops.create_task(
                run_every("dispatch", self.dispatch, options.dispatch_interval, stop, wake=wake)
            )
            loops.create_task(run_every("runs", self.watch, options.ssh_poll_interval, stop))

    @contextlib.asynccontextmanager
    async def launching(self) -> AsyncIterator[None]:
        """While open, `dispatch` launches runs in this TaskGroup; leaving waits for them."""
        async with asyncio.TaskGroup() as group:
            self._group = group
            try:
                yield
            finally:
                self._group = None

    async def watch(self) -> int:
        """One pass over every host's runs (`RunFollower.watch`)."""
        return await self.follower.watch()

    # --- slots as agents ------------------------------------------------------------

    async def register_slots(self) -> None:
        """Each configured slot is an agent; ones no longer configured are deregistered."""
        now = self._ctx.clock.now()
        wanted = {s.agent_id: s for s in self._slots}
        for slot in self._slots:
            existing = await self._ctx.store.get_agent(slot.agent_id)
            reg = Registration(
                agent_id=slot.agent_id,
                agent_type=slot.agent_type,
                mode=AgentMode.SSH_CLI,
                hostname=slot.hostname,
                capabilities=slot.capabilities,
                max_concurrency=slot.max_concurrency,
                host_id=slot.host_id,
            )
            if existing is None or not _same_registration(existing, reg):
                await append(self._ctx, agent_model.register(existing, reg, now, actor=ACTOR))
        known = await self._ctx.store.list_agents(AgentQuery(mode=AgentMode.SSH_CLI))
        for agent in known:
            if agent.agent_id not in wanted and agent.status is not AgentStatus.DEREGISTERED:
                await append(self._ctx, agent_model.deregister(agent, now, actor=ACTOR))
                held = await self._ctx.store.held_tasks(agent.agent_id)
                await self._tasks.release_held(held, "host removed from the config", ACTOR)
        self._ctx.signal.notify()

    # --- placing tasks --------------------------------------------------------------

    async def dispatch(self) -> int:
        """Claim open tasks for free slots, least loaded first, until none fits; each claim's
        run is launched in the `launching` group."""
        if self._group is None:
            raise RuntimeError("dispatch() launches runs: call it inside `launching()`")
        launched = 0
        while True:
            now = self._ctx.clock.now()
            counts = await self._ctx.store.running_counts()
            up: dict[str, HostSlot] = {
                s.agent_id: s for s in self._slots if self._health.is_up(s.host_id, now)
            }
            room = [
                Capacity(agent_id=i, running=counts.get(i, 0), max_concurrency=s.max_concurrency)
                for i, s in up.items()
            ]
            free = [up[c.agent_id] for c in least_loaded(room)]
            claimed = await self._claim_first(free, now)
            if claimed is None:
                return launched
            slot, task = claimed
            key = RunKey(slot.host_id, task.task_id, task.attempt)
            self._launches.begin(key, now)
            self._group.create_task(self._launch(slot, task, key))
            launched += 1

    async def _claim_first(
        self, free: list[HostSlot], now: datetime
    ) -> tuple[HostSlot, Task] | None:
        for slot in free:
            agent = await self._ctx.store.get_agent(slot.agent_id)
            if agent is None or agent.status is AgentStatus.DEREGISTERED:
                continue
            try:
                task = await self._ctx.store.claim_task(agent, SSH_MODES, new_lease(), now)
            except (AgentNotFound, AgentUnavailable):
                continue  # deregistered since we looked
            if task is not None:
                return slot, task
        return None

    async def _launch(self, slot: HostSlot, task: Task, key: RunKey) -> None:
        assert task.lease is not None  # a claimed task always carries its lease
        order = RunOrder(
            key=key,
            agent_id=slot.agent_id,
            agent_type=slot.agent_type,
            prompt=task.prompt,
            repo=task.source.repo,
            branch=task.branch_name,
            lease=task.lease,
            title=task.title,
        )
        try:
            await self._runs.launch(order)
        except HostUnreachable as e:
            self._health.failed(slot.host_id, str(e), self._ctx.clock.now())
            await self._attempts.fail(task, FailureReason.DISPATCH_ERROR, str(e))
        except LaunchFailed as e:
            log.warning("launch failed", task_id=task.task_id, host_id=slot.host_id, error=str(e))
            await self._attempts.fail(task, FailureReason.DISPATCH_ERROR, str(e))
        except Exception as e:
            # A bug, not a crash: the attempt counts, or a task that always trips it would
            # be relaunched for free forever (see RunFollower._follow).
            log.exception("launch broke", task_id=task.task_id, host_id=slot.host_id)
            message = f"launch failed: {e!r}"[:2000]
            await self._attempts.fail(task, FailureReason.DISPATCH_ERROR, message)
        else:
            log.info("run launched", task_id=task.task_id, attempt=task.attempt, host=slot.host_id)
            await self._attempts.start(task)
        finally:
            self._launches.end(key, self._ctx.clock.now())


def _same_registration(agent: Agent, reg: Registration) -> bool:
    return (
        agent.status is not AgentStatus.DEREGISTERED
        and agent.agent_type == reg.agent_type
        and agent.mode is reg.mode
        and agent.hostname == reg.hostname
        and agent.capabilities == reg.capabilities
        and agent.max_concurrency == reg.max_concurrency
        and agent.host_id == reg.host_id
    )
