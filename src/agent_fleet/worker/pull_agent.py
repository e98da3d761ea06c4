"""The agent loop: register, heartbeat, pull up to max_concurrency tasks, deliver receipts.

Shutdown: the first SIGTERM/SIGINT stops pulling and lets running tasks finish
within the grace period, then kills what is left and deregisters (the server
retries those tasks elsewhere); a second SIGINT kills at once.
"""

import asyncio
import signal
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import structlog

from agent_fleet.execution.retention import collect
from agent_fleet.execution.workspace import workspace_for
from agent_fleet.scrub import Scrubber
from agent_fleet.worker.client import (
    ClientError,
    Credentials,
    FleetClient,
    NotRegistered,
    Refused,
    token_file_for,
)
from agent_fleet.worker.job import AgentSetup, Job
from agent_fleet.worker.outbox import Outbox

log = structlog.get_logger("agent_fleet.agent")
JANITOR_MAX_PERIOD = timedelta(minutes=10)
JANITOR_MIN_PERIOD = timedelta(seconds=1)
LONG_POLL_SECS = 20.0
MAX_HEARTBEAT_PERIOD_SECS = 5.0


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentOptions:
    capabilities: list[str]
    max_concurrency: int
    shutdown_grace_secs: float = 60.0
    hostname: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)  # registered: the CLI's version
    keep_failed: timedelta = timedelta(days=7)  # failed workspaces kept this long


class PullAgent:
    def __init__(self, setup: AgentSetup, options: AgentOptions, token: str | None) -> None:
        self.setup = setup
        self.options = options
        credentials = Credentials(
            shared_token=token,
            token_file=token_file_for(setup.work_dir, setup.server, setup.agent_id),
        )
        self.client = FleetClient(setup.server, credentials)
        self.scrubber = Scrubber.from_environment(setup.base_env, [token] if token else [])
        self.outbox = Outbox(setup.work_dir / "outbox")
        self.jobs: dict[str, Job] = {}
        self.running: dict[str, asyncio.Task[None]] = {}
        self.draining = asyncio.Event()
        self.killing = asyncio.Event()
        self.heartbeat_period = MAX_HEARTBEAT_PERIOD_SECS

    # --- lifecycle ------------------------------------------------------------------

    async def run(self) -> None:
        self._install_signals()
        try:
            await self.register()
            await self.deliver_outbox()
            async with asyncio.TaskGroup() as group:
                beat = group.create_task(self._heartbeats())
                janitor = group.create_task(self._collect_workspaces())
                await self._pull(group)
                await self._drain()
                beat.cancel()
                janitor.cancel()
            await self._deregister_if_abandoning()
        finally:
            await self.client.close()
            log.info("agent stopped", agent_id=self.setup.agent_id)

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._on_stop_signal)
        loop.add_signal_handler(signal.SIGINT, self._on_stop_signal)

    def _on_stop_signal(self) -> None:
        if self.draining.is_set():
            log.warning("second signal: killing running tasks now")
            self.killing.set()
        else:
            log.info(
                "stopping: no new work; running tasks may finish",
                grace_secs=self.options.shutdown_grace_secs,
                running=len(self.jobs),
            )
            self.draining.set()

    async def register(self) -> None:
        body = {
            "agent_id": self.setup.agent_id,
            "agent_type": self.setup.agent_type,
            "capabilities": self.options.capabilities,
            "max_concurrency": self.options.max_concurrency,
            "hostname": self.options.hostname,
            "metadata": self.options.metadata,
        }
        reply = (
            await self.client.call("POST", "/api/v1/agents/register", body, registering=True)
        ).json()
        self.client.credentials.keep(reply["registry_token"])
        self.scrubber.add(reply["registry_token"])
        self.heartbeat_period = min(
            float(reply["heartbeat_interval_secs"]), MAX_HEARTBEAT_PERIOD_SECS
        )
        log.info(
            "registered",
            agent_id=reply["agent_id"],
            capabilities=self.options.capabilities,
            slots=self.options.max_concurrency,
        )

    # --- pulling ----------------------------------------------------------------------

    async def _pull(self, group: asyncio.TaskGroup) -> None:
        slots = asyncio.Semaphore(self.options.max_concurrency)
        while not self.draining.is_set():
            await _first(slots.acquire(), self.draining.wait())
            if self.draining.is_set():
                return
            handout = await self._dequeue()
            if handout is None:
                slots.release()
                continue
            job = Job(
                setup=self.setup,
                client=self.client,
                scrubber=self.scrubber,
                task=handout,  # the task object itself, with the lease beside its fields
                lease=handout["lease"],
            )
            self.jobs[job.task_id] = job
            log.info(
                "task taken", task_id=job.task_id, attempt=job.attempt, title=job.task["title"][:80]
            )
            self.running[job.task_id] = group.create_task(self._work(job, slots))

    async def _dequeue(self) -> dict[str, Any] | None:
        body = {"agent_id": self.setup.agent_id, "wait_secs": LONG_POLL_SECS}
        try:
            reply = await _first(
                self.client.call(
                    "POST", "/api/v1/tasks/dequeue", body, wait_secs=LONG_POLL_SECS + 10
                ),
                self.draining.wait(),
            )
        except NotRegistered:
            await self.register()
            return None
        except ClientError as e:
            log.warning("dequeue refused", error=str(e))
            await asyncio.sleep(1)
            return None
        if reply is None or reply.status_code == 204:
            return None
        handout: dict[str, Any] = reply.json()
        return handout

    async def _work(self, job: Job, slots: asyncio.Semaphore) -> None:
        try:
            await self._status(job, "running")
            receipt = await job.run()
            if receipt is not None:
                path = self.outbox.put(job.task_id, job.attempt, receipt)
                await self._deliver(path, receipt)
        finally:
            self.jobs.pop(job.task_id, None)
            self.running.pop(job.task_id, None)
            slots.release()

    async def _status(self, job: Job, state: str) -> None:
        body = {"agent_id": self.setup.agent_id, "lease": job.lease, "state": state}
        try:
            reply = await self.client.call("POST", f"/api/v1/tasks/{job.task_id}/status", body)
        except ClientError as e:
            await job.cancel(f"the server refused the attempt ({e})")
            return
        if reply.json().get("cancel"):
            await job.cancel("the server asked to stop")

    # --- receipts ---------------------------------------------------------------------

    async def deliver_outbox(self) -> None:
        for path, receipt in self.outbox.pending():
            await self._deliver(path, receipt)

    async def _deliver(self, path: Any, receipt: dict[str, Any]) -> None:
        task_id = receipt.get("task_id")
        try:
            reply = await self.client.call("POST", f"/api/v1/tasks/{task_id}/complete", receipt)
        except Refused as e:
            log.warning("receipt refused; the attempt is over", task_id=task_id, error=str(e))
        except ClientError as e:
            log.warning("receipt not delivered; kept in the outbox", task_id=task_id, error=str(e))
            return
        else:
            log.info(
                "task reported",
                task_id=task_id,
                status=receipt.get("status"),
                state=reply.json().get("state"),
            )
        self.outbox.done(path)

    # --- heartbeats and shutdown --------------------------------------------------------

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_period)
            body = {"agent_id": self.setup.agent_id, "running_tasks": list(self.jobs)}
            try:
                reply = await self.client.call("POST", "/api/v1/agents/heartbeat", body, attempts=1)
            except NotRegistered:
                await self.register()
                continue
            except ClientError:
                continue  # the server is away; our tasks keep running
            for task_id in reply.json().get("cancel_tasks", []):
                job = self.jobs.get(task_id)
                if job is not None:
                    log.info("cancel requested", task_id=task_id)
                    await job.cancel("cancelled on the server")

    async def _collect_workspaces(self) -> None:
        """Old workspaces collected now and then: completed ones after keep_completed,
        others after keep_failed; never a running task's."""
        keep_completed, keep_failed = self.setup.keep_completed, self.options.keep_failed
        every = min(JANITOR_MAX_PERIOD, max(keep_completed / 4, JANITOR_MIN_PERIOD))
        while True:
            busy = {
                workspace_for(self.setup.work_dir, job.task_id, job.attempt).root
                for job in self.jobs.values()
            }
            removed = await asyncio.to_thread(
                collect,
                self.setup.work_dir,
                keep_completed=keep_completed,
                keep_failed=keep_failed,
                busy=busy,
            )
            if removed:
                log.info("workspaces collected", count=len(removed))
            await asyncio.sleep(every.total_seconds())

    async def _drain(self) -> None:
        if not self.jobs:
            return
        waiting = asyncio.ensure_future(self._until_idle())
        killing = asyncio.ensure_future(self.killing.wait())
        await asyncio.wait(
            {waiting, killing},
            timeout=self.options.shutdown_grace_secs,
            return_when=asyncio.FIRST_COMPLETED,
        )
        killing.cancel()
        waiting.cancel()
        for job in list(self.jobs.values()):
            await job.cancel("the agent is shutting down")
        await self._until_idle()

    async def _until_idle(self) -> None:
        await asyncio.gather(*self.running.values(), return_exceptions=True)

    async def _deregister_if_abandoning(self) -> None:
        try:
            await self.client.call(
                "POST", "/api/v1/agents/deregister", {"agent_id": self.setup.agent_id}, attempts=3
            )
        except ClientError as e:
            log.warning("could not deregister", error=str(e))


async def _first(main: Any, stopper: Any) -> Any:
    """Await `main` unless `stopper` finishes first; then cancel `main` and return None."""
    main_task = asyncio.ensure_future(main)
    stop_task = asyncio.ensure_future(stopper)
    done, _ = await asyncio.wait({main_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
    stop_task.cancel()
    if main_task in done:
        return main_task.result()
    main_task.cancel()
    return None
