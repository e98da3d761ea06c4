"""ssh_cli: placing tasks on host slots, and following their detached runs to the end.

The store is the only memory. Which run belongs to which attempt is read back from
the hosts on every pass (`HostRuns.survey`), so an orchestrator that restarts picks up
runs still alive, collects those that ended while it was down, and stops those whose
task moved on (cancelled, timed out, re-assigned).
"""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog

from agent_fleet.domain import agent as agent_model
from agent_fleet.domain import task as task_model
from agent_fleet.domain.agent import Agent, Registration
from agent_fleet.domain.errors import (
    AgentNotFound,
    AgentUnavailable,
    FleetError,
    HostUnreachable,
    LaunchFailed,
)
from agent_fleet.domain.events import TaskEvent
from agent_fleet.domain.ids import AgentId
from agent_fleet.domain.states import (
    AgentMode,
    AgentStatus,
    ExecutionMode,
    FailureReason,
    LossCause,
    ReceiptStatus,
    TaskState,
)
from agent_fleet.domain.task import Task
from agent_fleet.domain.values import Receipt
from agent_fleet.ports.hosts import HostRun, HostRuns, RunKey, RunOrder, RunPhase
from agent_fleet.ports.queries import AgentQuery
from agent_fleet.services.commit import decide_task
from agent_fleet.services.context import Context, append
from agent_fleet.services.stalls import ProgressClock
from agent_fleet.services.tasks import TaskService, new_lease

log = structlog.get_logger("agent_fleet.dispatch")

SSH_MODES = frozenset({ExecutionMode.SSH_CLI, ExecutionMode.UNDECIDED})
LOG_READ_BYTES = 256 * 1024
#: An assigned task with no run on its host after this long was never launched
#: (the orchestrator died between claim and launch): lost, so it retries.
LAUNCH_GRACE = timedelta(seconds=60)
#: A workspace still being prepared (clone) after this long will not start.
PREPARE_LIMIT_SECS = 15 * 60
BACKOFF_FIRST_SECS = 2.0
BACKOFF_MAX_SECS = 300.0
PURGE_EVERY = timedelta(hours=1)
PURGE_AT_MOST_EVERY = timedelta(minutes=1)
ACTOR = "dispatcher"


@dataclass(frozen=True, slots=True, kw_only=True)
class Slot:
    """One `agents = [...]` entry of a `[[hosts]]` block: agent `<host_id>/<agent_type>`."""

    host_id: str
    hostname: str
    agent_type: str
    capabilities: tuple[str, ...]
    max_concurrency: int
    #: A run with no progress this long is stopped and fails `stalled` (None: never).
    idle_timeout: timedelta | None = None

    @property
    def agent_id(self) -> AgentId:
        return AgentId(f"{self.host_id}/{self.agent_type}")


@dataclass(slots=True)
class _HostHealth:
    failures: int = 0
    down_since: datetime | None = None
    retry_at: datetime | None = None
    last_purge: datetime | None = None


@dataclass(slots=True)
class _Followed:
    """What this process knows of the runs it follows (rebuilt from the store on restart)."""

    log_offsets: dict[RunKey, int] = field(default_factory=dict)
    launching: set[RunKey] = field(default_factory=set)
    # When our own claim or launch last changed each run: a survey taken before
    # that saw an older picture of it (nothing yet, or a workspace being prepared).
    changed_at: dict[RunKey, datetime] = field(default_factory=dict)
    settled: set[RunKey] = field(default_factory=set)  # ended, log shipped, workspace kept
    progress: ProgressClock[RunKey] = field(default_factory=ProgressClock)


class Dispatcher:
    def __init__(
        self,
        ctx: Context,
        tasks: TaskService,
        runs: HostRuns,
        slots: Sequence[Slot],
        keep_failed_days: int,
        exclusive: bool = False,
    ) -> None:
        """`exclusive`: this process is the only orchestrator on its store (SQLite), so a
        held task whose run it is not launching and cannot find is lost at once; with
        replicas (PostgreSQL) another one may be launching it, so grace periods apply."""
        self._ctx = ctx
        self._exclusive = exclusive
        self._tasks = tasks
        self._runs = runs
        self._slots = list(slots)
        self._hosts = {s.host_id: _HostHealth() for s in slots}
        self._keep_failed_days = keep_failed_days
        self._followed = _Followed()
        self._launches: set[asyncio.Task[None]] = set()

    @property
    def has_hosts(self) -> bool:
        return bool(self._slots)

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
        """Claim open tasks for free slots, least loaded first, until none fits."""
        launched = 0
        while True:
            now = self._ctx.clock.now()
            counts = await self._ctx.store.running_counts()
            free = [
                s
                for s in self._slots
                if self._is_up(s.host_id, now) and counts.get(s.agent_id, 0) < s.max_concurrency
            ]
            free.sort(key=lambda s: (counts.get(s.agent_id, 0) / s.max_concurrency, s.agent_id))
            claimed = await self._claim_first(free, now)
            if claimed is None:
                return launched
            slot, task = claimed
            key = RunKey(slot.host_id, task.task_id, task.attempt)
            self._followed.launching.add(key)
            self._followed.changed_at[key] = now
            launch = asyncio.create_task(self._launch(slot, task, key))
            self._launches.add(launch)
            launch.add_done_callback(self._launches.discard)
            launched += 1

    async def _claim_first(self, free: list[Slot], now: datetime) -> tuple[Slot, Task] | None:
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

    async def _launch(self, slot: Slot, task: Task, key: RunKey) -> None:
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
            self._host_failed(slot.host_id, str(e))
            await self._fail(task, FailureReason.DISPATCH_ERROR, str(e))
        except LaunchFailed as e:
            log.warning("launch failed", task_id=task.task_id, host_id=slot.host_id, error=str(e))
            await self._fail(task, FailureReason.DISPATCH_ERROR, str(e))
        except Exception as e:
            # A bug, not a crash: the attempt counts, or a task that always trips it would
            # be relaunched for free forever (see _follow).
            log.exception("launch broke", task_id=task.task_id, host_id=slot.host_id)
            await self._fail(task, FailureReason.DISPATCH_ERROR, f"launch failed: {e!r}"[:2000])
        else:
            log.info("run launched", task_id=task.task_id, attempt=task.attempt, host=slot.host_id)
            await self._start(task)
        finally:
            self._followed.changed_at[key] = self._ctx.clock.now()
            self._followed.launching.discard(key)

    async def drain_launches(self) -> None:
        """Wait for launches in flight (shutdown, tests)."""
        while self._launches:
            await asyncio.gather(*list(self._launches), return_exceptions=True)

    # --- following runs -------------------------------------------------------------

    async def watch(self) -> int:
        """One pass over every host: ship logs, collect results, stop what must stop."""
        changed = 0
        for host_id in self._hosts:
            now = self._ctx.clock.now()
            if self._is_up(host_id, now):
                try:
                    changed += await self._watch_host(host_id)
                    continue
                except HostUnreachable as e:
                    self._host_failed(host_id, str(e))
            changed += await self._lose_if_down_too_long(host_id, now)
        return changed

    async def _watch_host(self, host_id: str) -> int:
        surveyed_at = self._ctx.clock.now()
        seen = {(r.key.task_id, r.key.attempt): r for r in await self._runs.survey(host_id)}
        self._host_ok(host_id)
        self._forget_old_claims(surveyed_at)
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
        self, slot: Slot, task: Task, run: HostRun | None, surveyed_at: datetime
    ) -> int:
        key = RunKey(slot.host_id, task.task_id, task.attempt)
        changed = self._followed.changed_at.get(key)
        if key in self._followed.launching or (changed is not None and changed >= surveyed_at):
            return 0  # being launched, or launched since the survey looked: next pass
        now = self._ctx.clock.now()
        # No process of ours launches this attempt, yet it has no run, or a workspace that
        # is not ready: the orchestrator that launched it died (with replicas, perhaps
        # another one still works on it: wait). Its crash must not cost the task an attempt.
        if run is None and task.state is TaskState.RUNNING:
            await self._lose(task, f"its run is gone from host {slot.host_id}")
            return 1
        if run is None:
            assigned_long_ago = task.assigned_at is None or now - task.assigned_at > LAUNCH_GRACE
            if self._exclusive or assigned_long_ago:
                await self._lose(task, "its launch was interrupted", LossCause.ORCHESTRATOR_RESTART)
                return 1
            return 0
        match run.phase:
            case RunPhase.PREPARING:
                if self._exclusive or run.age_secs > PREPARE_LIMIT_SECS:
                    why = "its workspace was never ready: its launch was interrupted"
                    await self._lose(task, why, LossCause.ORCHESTRATOR_RESTART)
                    return 1
                return 0
            case RunPhase.ALIVE:
                started = await self._start(task) if task.state is TaskState.ASSIGNED else False
                shipped = await self._ship_log(task, key)
                if await self._stop_if_stalled(slot, task, key, shipped):
                    return 1
                return int(started)
            case RunPhase.EXITED | RunPhase.VANISHED:
                self._followed.progress.forget(key)
                if task.state is TaskState.ASSIGNED:
                    # It ran (and ended) while we were down, before we recorded the start.
                    await self._start(task)
                    refreshed = await self._ctx.store.get_task(task.task_id)
                    task = refreshed if refreshed is not None else task
                await self._ship_log(task, key, final=True)
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
            in_progress = key in self._followed.launching or (
                not self._exclusive and run.age_secs < PREPARE_LIMIT_SECS
            )  # with replicas, perhaps another one's launch
            if not in_progress:
                await self._runs.remove(key)  # never started: nothing to keep
            return 0
        if run.phase is RunPhase.ALIVE and not succeeded:
            why = task.state if task is not None else "unknown task"
            log.info("stopping run", task_id=key.task_id, attempt=key.attempt, why=str(why))
            await self._runs.stop(key)
            self._followed.log_offsets.pop(key, None)
            return 1
        if key in self._followed.settled or task is None or not current:
            return 0
        # The tail written after the receipt.
        await self._ship_log(task, key, final=run.phase is not RunPhase.ALIVE)
        if run.phase is RunPhase.ALIVE:
            return 0  # it posted its receipt and is finishing up: let it
        keep_completed = self._ctx.options.keep_completed_workspaces
        if succeeded and keep_completed:
            await self._runs.mark_completed(key)  # kept a while, then purged
            self._followed.settled.add(key)
        elif succeeded or task.state is TaskState.CANCELLED:
            await self._runs.remove(key)
            self._followed.log_offsets.pop(key, None)
        else:
            self._followed.settled.add(key)  # failed: kept for inspection, purged later
        return 0

    async def _finish(self, slot: Slot, task: Task, key: RunKey, exit_code: int | None) -> int:
        result = await self._runs.result(key, slot.agent_type, exit_code)
        assert task.lease is not None  # a held task always carries its lease
        lease = task.lease
        receipt = Receipt(
            task_id=task.task_id,
            agent_id=slot.agent_id,
            lease=lease,
            status=ReceiptStatus.COMPLETED if result.completed else ReceiptStatus.FAILED,
            summary=_redact(result.summary, lease)[:100_000],
            duration_seconds=_duration(task, self._ctx.clock.now()),
            artifacts=result.artifacts,
            error=_redact(result.error, lease)[:100_000] if result.error else None,
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

    async def _stop_if_stalled(self, slot: Slot, task: Task, key: RunKey, output: bytes) -> bool:
        """A run whose log showed no progress for its idle timeout is stopped (TERM, grace,
        KILL) and its attempt fails `stalled`, to be retried like any failure."""
        clock, now = self._followed.progress, self._ctx.clock.now()
        clock.saw(
            key, now, progressed=bool(output) and self._runs.shows_progress(slot.agent_type, output)
        )
        if not clock.is_stalled(key, now, slot.idle_timeout):
            return False
        idle = int(clock.idle_for(key, now).total_seconds())
        log.warning("run stalled", task_id=task.task_id, attempt=task.attempt, idle_secs=idle)
        await self._runs.stop(key)
        clock.forget(key)
        await self._fail(task, FailureReason.STALLED, f"no progress for {idle} s: stopped")
        return True

    async def _ship_log(self, task: Task, key: RunKey, final: bool = False) -> bytes:
        """Copy the run's new output into the task's log and return it (as read, for stall
        detection). Offsets count the bytes of the file on the host; what is stored has the
        lease redacted (a run may print its own environment), so a stored chunk can be
        shorter than the bytes it stands for. `final`: the run has ended, nothing more will
        follow what is there."""
        shipped: list[bytes] = []
        offset = self._followed.log_offsets.get(key)
        if offset is None:  # first look since (re)start: continue after what is stored
            _, head = await self._ctx.store.read_log(task.task_id, task.attempt, 0, 0)
            offset = head.length
        lease = (task.lease or (task.receipt.lease if task.receipt else None) or "").encode()
        while True:
            data = await self._runs.read_log(key, offset, LOG_READ_BYTES)
            # A lease split across two reads must still be redacted: its start waits.
            piece = data if final else data[: len(data) - _secret_begins(data, lease)]
            if not piece:
                break
            shipped.append(piece)
            head = await self._ctx.store.append_log(
                task.task_id,
                task.attempt,
                offset,
                _redact_bytes(piece, lease),
                self._ctx.options.log_limit_bytes,
                source_length=len(piece),
            )
            offset = head.length  # the store's ack, in file bytes: where to read next
            if len(data) < LOG_READ_BYTES:
                break
        self._followed.log_offsets[key] = offset
        return b"".join(shipped)

    def _forget_old_claims(self, now: datetime) -> None:
        old = [k for k, at in self._followed.changed_at.items() if now - at > LAUNCH_GRACE]
        for key in old:
            del self._followed.changed_at[key]

    # --- hosts up and down ----------------------------------------------------------

    def _is_up(self, host_id: str, now: datetime) -> bool:
        health = self._hosts[host_id]
        return health.retry_at is None or now >= health.retry_at

    def _host_failed(self, host_id: str, why: str) -> None:
        health = self._hosts[host_id]
        now = self._ctx.clock.now()
        health.failures += 1
        health.down_since = health.down_since or now
        wait = min(BACKOFF_FIRST_SECS * 2 ** (health.failures - 1), BACKOFF_MAX_SECS)
        health.retry_at = now + timedelta(seconds=wait)
        log.warning("host down", host_id=host_id, error=why, retry_in_secs=wait)

    def _host_ok(self, host_id: str) -> None:
        health = self._hosts[host_id]
        if health.failures:
            log.info("host back", host_id=host_id)
        health.failures, health.down_since, health.retry_at = 0, None, None

    async def _lose_if_down_too_long(self, host_id: str, now: datetime) -> int:
        down_since = self._hosts[host_id].down_since
        if down_since is None or now - down_since < self._ctx.options.heartbeat_timeout:
            return 0
        lost = 0
        for slot in (s for s in self._slots if s.host_id == host_id):
            held = await self._ctx.store.held_tasks(slot.agent_id)
            await self._tasks.release_held(held, f"host {host_id} unreachable", ACTOR)
            lost += len(held)
        return lost

    async def _purge_if_due(self, host_id: str) -> None:
        health = self._hosts[host_id]
        now = self._ctx.clock.now()
        keep_completed = self._ctx.options.keep_completed_workspaces
        every = min(PURGE_EVERY, max(keep_completed / 4, PURGE_AT_MOST_EVERY))
        if health.last_purge is None or now - health.last_purge >= every:
            health.last_purge = now
            await self._runs.purge(host_id, self._keep_failed_days, keep_completed)

    # --- decisions --------------------------------------------------------------------

    async def _start(self, task: Task) -> bool:
        now = self._ctx.clock.now()
        return await self._on_attempt(
            task,
            lambda t: task_model.start(t, now, ACTOR) if t.state is TaskState.ASSIGNED else [],
        )

    async def _fail(self, task: Task, reason: FailureReason, message: str) -> None:
        now, policy = self._ctx.clock.now(), self._ctx.options.retry
        await self._on_attempt(
            task, lambda t: task_model.fail(t, reason, message, now, ACTOR, policy)
        )

    async def _lose(self, task: Task, message: str, cause: LossCause | None = None) -> None:
        now, policy = self._ctx.clock.now(), self._ctx.options.retry
        await self._on_attempt(
            task, lambda t: task_model.lose(t, message, now, ACTOR, policy, cause=cause)
        )

    async def _on_attempt(self, task: Task, decision: task_model.Decision) -> bool:
        """Apply `decision` only while the attempt we looked at is still the held one
        (not cancelled, timed out or re-assigned meanwhile); True when it changed it."""
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


_SUCCEEDED = frozenset({TaskState.COMPLETED, TaskState.REVIEW_PENDING})


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


def _redact(text: str, lease: str) -> str:
    return text.replace(lease, "[redacted]")


def _redact_bytes(data: bytes, secret: bytes) -> bytes:
    return data.replace(secret, b"[redacted]") if secret else data


def _secret_begins(data: bytes, secret: bytes) -> int:
    """How many trailing bytes of `data` could be the start of `secret`."""
    for n in range(min(len(secret) - 1, len(data)), 0, -1):
        if data.endswith(secret[:n]):
            return n
    return 0


def _duration(task: Task, now: datetime) -> float | None:
    began = task.started_at or task.assigned_at
    return round((now - began).total_seconds(), 3) if began else None
