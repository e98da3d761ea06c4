"""ssh_cli: following detached runs on the hosts to their end.

The store is the only memory. Which run belongs to which attempt is read back from
the hosts on every pass (`HostRuns.survey`), so an orchestrator that restarts picks up
runs still alive, collects those that ended while it was down, and stops those whose
task moved on (cancelled, timed out, re-assigned).
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog

from agent_fleet.domain.errors import FleetError, HostUnreachable
from agent_fleet.domain.states import FailureReason, LossCause, ReceiptStatus, TaskState
from agent_fleet.domain.task import Task
from agent_fleet.domain.values import Receipt
from agent_fleet.ports.hosts import HostRun, HostRuns, HostSlot, RunKey, RunPhase
from agent_fleet.services.attempts import ACTOR, Attempts
from agent_fleet.services.context import Context
from agent_fleet.services.host_health import HostHealth
from agent_fleet.services.run_logs import RunLogs, redact_lease
from agent_fleet.services.stalls import ProgressClock
from agent_fleet.services.tasks import TaskService

log = structlog.get_logger("agent_fleet.dispatch")

#: An assigned task with no run on its host after this long was never launched
#: (the orchestrator died between claim and launch): lost, so it retries.
LAUNCH_GRACE = timedelta(seconds=60)
#: A workspace still being prepared (clone) after this long will not start.
PREPARE_LIMIT_SECS = 15 * 60
PURGE_EVERY = timedelta(hours=1)
PURGE_AT_MOST_EVERY = timedelta(minutes=1)
RECEIPT_TEXT_CHARS = 100_000
_SUCCEEDED = frozenset({TaskState.COMPLETED, TaskState.REVIEW_PENDING})


@dataclass(slots=True)
class Launches:
    """This process's own launches (none after a restart): those in flight, and when its
    claim or launch last changed each run, so that a survey taken before that (which saw
    nothing yet, or a workspace being prepared) is not read as the run's absence."""

    in_flight: set[RunKey] = field(default_factory=set)
    changed_at: dict[RunKey, datetime] = field(default_factory=dict)

    def begin(self, key: RunKey, now: datetime) -> None:
        self.in_flight.add(key)
        self.changed_at[key] = now

    def end(self, key: RunKey, now: datetime) -> None:
        self.changed_at[key] = now
        self.in_flight.discard(key)

    def is_newer_than(self, key: RunKey, surveyed_at: datetime) -> bool:
        """Being launched, or launched since the survey looked."""
        changed = self.changed_at.get(key)
        return key in self.in_flight or (changed is not None and changed >= surveyed_at)

    def forget_older_than(self, moment: datetime) -> None:
        for key in [k for k, at in self.changed_at.items() if at < moment]:
            del self.changed_at[key]


class RunFollower:
    def __init__(
        self,
        ctx: Context,
        tasks: TaskService,
        runs: HostRuns,
        slots: Sequence[HostSlot],
        health: HostHealth,
        launches: Launches,
        *,
        keep_failed_days: int,
        exclusive: bool,
    ) -> None:
        self._ctx = ctx
        self._tasks = tasks
        self._runs = runs
        self._slots = list(slots)
        self._health = health
        self._launches = launches
        self._keep_failed_days = keep_failed_days
        self._exclusive = exclusive
        self._attempts = Attempts(ctx)
        self._logs = RunLogs(ctx, runs)
        self._settled: set[RunKey] = set()  # ended, log shipped, workspace kept
        self._progress: ProgressClock[RunKey] = ProgressClock()
        self._last_purge: dict[str, datetime] = {}

    async def watch(self) -> int:
        """One pass over every host: ship logs, collect results, stop what must stop."""
        changed = 0
        for host_id in self._health.host_ids:
            now = self._ctx.clock.now()
            if self._health.is_up(host_id, now):
                try:
                    changed += await self._watch_host(host_id)
                    continue
                except HostUnreachable as e:
                    self._health.failed(host_id, str(e), self._ctx.clock.now())
            changed += await self._lose_if_down_too_long(host_id, now)
        return changed

    async def _watch_host(self, host_id: str) -> int:
        surveyed_at = self._ctx.clock.now()
        seen = {(r.key.task_id, r.key.attempt): r for r in await self._runs.survey(host_id)}
        self._health.answered(host_id)
        self._launches.forget_older_than(surveyed_at - LAUNCH_GRACE)
        changed = 0
        for slot in (s for s in self._slots if s.host_id == host_id):
            for task in await self._ctx.store.held_tasks(slot.agent_id):
                run = seen.pop((task.task_id, task.attempt), None)
                changed += await self._follow(slot, task, run, surveyed_at)
        for run in seen.values():
            changed += await self._settle(run)
        await self._purge_if_due(host_id)
        return changed

    async def _follow(
        self, slot: HostSlot, task: Task, run: HostRun | None, surveyed_at: datetime
    ) -> int:
        key = RunKey(slot.host_id, task.task_id, task.attempt)
        if self._launches.is_newer_than(key, surveyed_at):
            return 0  # the survey's picture is older than our own launch: next pass
        now = self._ctx.clock.now()
        # No process of ours launches this attempt, yet it has no run, or a workspace that
        # is not ready: the orchestrator that launched it died (with replicas, perhaps
        # another one still works on it: wait). Its crash must not cost the task an attempt.
        if run is None and task.state is TaskState.RUNNING:
            await self._attempts.lose(task, f"its run is gone from host {slot.host_id}")
            return 1
        if run is None:
            assigned_long_ago = task.assigned_at is None or now - task.assigned_at > LAUNCH_GRACE
            if self._exclusive or assigned_long_ago:
                why = "its launch was interrupted"
                await self._attempts.lose(task, why, LossCause.ORCHESTRATOR_RESTART)
                return 1
            return 0
        match run.phase:
            case RunPhase.PREPARING:
                if self._exclusive or run.age_secs > PREPARE_LIMIT_SECS:
                    why = "its workspace was never ready: its launch was interrupted"
                    await self._attempts.lose(task, why, LossCause.ORCHESTRATOR_RESTART)
                    return 1
                return 0
            case RunPhase.ALIVE:
                started = task.state is TaskState.ASSIGNED and await self._attempts.start(task)
                shipped = await self._logs.ship(task, key)
                if await self._stop_if_stalled(slot, task, key, shipped):
                    return 1
                return int(started)
            case RunPhase.EXITED | RunPhase.VANISHED:
                self._progress.forget(key)
                if task.state is TaskState.ASSIGNED:
                    # It ran (and ended) while we were down, before we recorded the start.
                    await self._attempts.start(task)
                    refreshed = await self._ctx.store.get_task(task.task_id)
                    task = refreshed if refreshed is not None else task
                await self._logs.ship(task, key, final=True)
                return await self._finish(slot, task, key, run.exit_code)

    async def _settle(self, run: HostRun) -> int:
        """A run no held attempt claims: stop it if its task moved on, else let it end,
        ship the rest of its log, and tidy its workspace once the task succeeded."""
        key = run.key
        task = await self._ctx.store.get_task(key.task_id)
        current = (
            task is not None
            and task.attempt == key.attempt
            and task.host_id == key.host_id
            and task.agent_id is not None
        )
        succeeded = current and task is not None and task.state in _SUCCEEDED
        if run.phase is RunPhase.PREPARING:
            in_progress = key in self._launches.in_flight or (
                not self._exclusive and run.age_secs < PREPARE_LIMIT_SECS
            )  # with replicas, perhaps another one's launch
            if not in_progress:
                await self._runs.remove(key)  # never started: nothing to keep
            return 0
        if run.phase is RunPhase.ALIVE and not succeeded:
            why = task.state if task is not None else "unknown task"
            log.info("stopping run", task_id=key.task_id, attempt=key.attempt, why=str(why))
            await self._runs.stop(key)
            self._logs.forget(key)
            return 1
        if key in self._settled or task is None or not current:
            return 0
        # The tail written after the receipt.
        await self._logs.ship(task, key, final=run.phase is not RunPhase.ALIVE)
        if run.phase is RunPhase.ALIVE:
            return 0  # it posted its receipt and is finishing up: let it
        keep_completed = self._ctx.options.keep_completed_workspaces
        if succeeded and keep_completed:
            await self._runs.mark_completed(key)  # kept a while, then purged
            self._settled.add(key)
        elif succeeded or task.state is TaskState.CANCELLED:
            await self._runs.remove(key)
            self._logs.forget(key)
        else:
            self._settled.add(key)  # failed: kept for inspection, purged later
        return 0

    async def _finish(self, slot: HostSlot, task: Task, key: RunKey, exit_code: int | None) -> int:
        result = await self._runs.result(key, slot.agent_type, exit_code)
        assert task.lease is not None  # a held task always carries its lease
        lease = task.lease
        receipt = Receipt(
            task_id=task.task_id,
            agent_id=slot.agent_id,
            lease=lease,
            status=ReceiptStatus.COMPLETED if result.completed else ReceiptStatus.FAILED,
            summary=redact_lease(result.summary, lease)[:RECEIPT_TEXT_CHARS],
            duration_seconds=_duration(task, self._ctx.clock.now()),
            artifacts=result.artifacts,
            error=redact_lease(result.error, lease)[:RECEIPT_TEXT_CHARS] if result.error else None,
            usage=result.usage,
        )
        try:
            after = await self._tasks.complete(task.task_id, receipt)
        except FleetError as e:
            # The attempt moved on meanwhile (cancelled, timed out, another replica), or
            # the forge could not check the receipt: a task still held is tried next pass.
            log.info("result not recorded", task_id=task.task_id, error=str(e))
            return 0
        log.info("run finished", task_id=task.task_id, exit_code=exit_code, state=str(after.state))
        return 1

    async def _stop_if_stalled(
        self, slot: HostSlot, task: Task, key: RunKey, output: bytes
    ) -> bool:
        """A run whose log showed no progress for its idle timeout is stopped (TERM, grace,
        KILL) and its attempt fails `stalled`, to be retried like any failure."""
        clock, now = self._progress, self._ctx.clock.now()
        clock.saw(
            key, now, progressed=bool(output) and self._runs.shows_progress(slot.agent_type, output)
        )
        if not clock.is_stalled(key, now, slot.idle_timeout):
            return False
        idle = int(clock.idle_for(key, now).total_seconds())
        log.warning("run stalled", task_id=task.task_id, attempt=task.attempt, idle_secs=idle)
        await self._runs.stop(key)
        clock.forget(key)
        await self._attempts.fail(task, FailureReason.STALLED, f"no progress for {idle} s: stopped")
        return True

    async def _lose_if_down_too_long(self, host_id: str, now: datetime) -> int:
        down_for = self._health.down_for(host_id, now)
        if down_for is None or down_for < self._ctx.options.heartbeat_timeout:
            return 0
        lost = 0
        for slot in (s for s in self._slots if s.host_id == host_id):
            held = await self._ctx.store.held_tasks(slot.agent_id)
            await self._tasks.release_held(held, f"host {host_id} unreachable", ACTOR)
            lost += len(held)
        return lost

    async def _purge_if_due(self, host_id: str) -> None:
        now = self._ctx.clock.now()
        keep_completed = self._ctx.options.keep_completed_workspaces
        every = min(PURGE_EVERY, max(keep_completed / 4, PURGE_AT_MOST_EVERY))
        last = self._last_purge.get(host_id)
        if last is None or now - last >= every:
            self._last_purge[host_id] = now
            await self._runs.purge(host_id, self._keep_failed_days, keep_completed)


def _duration(task: Task, now: datetime) -> float | None:
    began = task.started_at or task.assigned_at
    return round((now - began).total_seconds(), 3) if began else None
