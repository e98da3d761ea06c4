"""One task on one agent: workspace, the CLI's process, its output, and its receipt."""

import asyncio
import dataclasses
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog

from agent_fleet.adapters.base import AgentAdapter, CliOutcome, RunSpec, judge, shows_progress, tail
from agent_fleet.execution import workspace as workspaces
from agent_fleet.execution.environment import agent_environment
from agent_fleet.execution.process import AgentProcess, Exit
from agent_fleet.execution.stall import IdleWatch
from agent_fleet.scrub import Scrubber
from agent_fleet.worker import delivery
from agent_fleet.worker.client import FleetClient
from agent_fleet.worker.logship import LogShipper

log = structlog.get_logger("agent_fleet.agent")
OUTPUT_KEEP_BYTES = 8 * 1024 * 1024
#: A receipt's summary and error are cut to this (the server's smallest allowed cap).
RECEIPT_TEXT_BYTES = 16 * 1024
LOG_FLUSH_SECS = 15.0


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentSetup:
    server: str
    agent_id: str
    agent_type: str
    command: list[str] | None
    work_dir: Path
    git_base_url: str | None
    base_env: Mapping[str, str]
    git: delivery.GitOptions = field(default_factory=delivery.GitOptions)
    adapter: AgentAdapter
    #: No progress this long stops the run, which fails `stalled` (None: never).
    idle_timeout: timedelta | None = None
    #: How long a completed task's workspace is kept (zero: removed at once).
    keep_completed: timedelta = timedelta(hours=24)
    as_root: bool = False


@dataclass(slots=True)
class Job:
    """A dequeued task. `cancel` stops its process; `run` returns the receipt to deliver."""

    setup: AgentSetup
    client: FleetClient
    scrubber: Scrubber
    task: dict[str, Any]
    lease: str
    process: AgentProcess | None = None
    cancelled: str | None = None
    output: bytearray = field(default_factory=bytearray)

    @property
    def task_id(self) -> str:
        return str(self.task["task_id"])

    @property
    def attempt(self) -> int:
        return int(self.task["attempt"])

    async def cancel(self, why: str) -> None:
        self.cancelled = why
        if self.process is not None:
            await self.process.stop()

    async def run(self) -> dict[str, Any] | None:
        """Run the CLI to its end; the receipt, or None when the attempt was taken away."""
        ws = workspaces.workspace_for(self.setup.work_dir, self.task_id, self.attempt)
        repo = repo_of(self.task)
        base = self.setup.git_base_url
        clone = f"{base.rstrip('/')}/{repo}.git" if repo and base else None
        shipper = LogShipper(self.client, self.task_id, self.setup.agent_id, self.lease)
        stop_shipping = asyncio.Event()
        started = time.monotonic()
        async with asyncio.TaskGroup() as group:
            group.create_task(shipper.run(stop_shipping))
            try:
                receipt = await self._execute(ws, clone, shipper, started)
            finally:
                await shipper.flush(LOG_FLUSH_SECS)
                stop_shipping.set()
        if receipt is not None and receipt["status"] == "completed":
            # Kept a while for whoever wants the files (a task without a repo has no
            # other copy), then collected; failed ones stay longer for inspection.
            if self.setup.keep_completed:
                workspaces.mark_completed(ws)
            else:
                workspaces.remove(ws)
        return receipt

    async def _execute(
        self, ws: workspaces.Workspace, clone: str | None, shipper: LogShipper, started: float
    ) -> dict[str, Any] | None:
        adapter = self.setup.adapter
        branch = str(self.task["branch_name"])
        git_env = delivery.git_environment(self.setup.base_env, self.setup.git, self.setup.work_dir)
        try:
            await workspaces.prepare(ws, str(self.task["prompt"]), clone, branch, git_env)
            await delivery.write_plan(ws, clone, self.task, self.setup.git)
        except (workspaces.WorkspaceError, OSError) as e:
            return self._receipt("failed", f"workspace: {e}", started, error=str(e))
        spec = RunSpec(
            workspace=str(ws.work),
            prompt_file=str(ws.prompt_file),
            receipt_file=str(ws.receipt_file),
            task_id=self.task_id,
            branch=branch,
            repo=repo_of(self.task),
        )
        argv = adapter.argv(spec)
        env = self._environment(ws, branch)
        env.update(adapter.environment(as_root=self.setup.as_root))
        watch = IdleWatch(self.setup.idle_timeout)

        async def on_output(piece: bytes) -> None:
            decoded = piece.decode("utf-8", errors="replace")
            if shows_progress(adapter, decoded):
                watch.progressed()
            text = self.scrubber.scrub(decoded).encode()
            shipper.append(text)
            self.output += text
            if len(self.output) > OUTPUT_KEEP_BYTES:
                del self.output[: len(self.output) - OUTPUT_KEEP_BYTES]

        try:
            self.process = await AgentProcess.start(
                argv, ws.work, env, str(self.task["prompt"]).encode()
            )
        except OSError as e:
            return self._receipt(
                "failed",
                f"cannot start {argv[0]}: {e.strerror}",
                started,
                error=f"cannot start {argv[0]}",
            )
        log.info(
            "task running",
            task_id=self.task_id,
            attempt=self.attempt,
            pid=self.process.pid,
            command=argv[0],
        )
        if self.cancelled:
            await self.process.stop()
        exit = await self._wait(self.process, on_output, watch)
        if self.cancelled:
            shipper.append(f"\n[agent-fleet] stopped: {self.cancelled}\n".encode())
            log.info("task stopped", task_id=self.task_id, reason=self.cancelled)
            return None
        if watch.stalled:
            return self._stalled(watch, shipper, started)
        written = _read_receipt_file(ws.receipt_file)
        if written is not None:
            receipt = self._fill(written, started)
        else:
            text = self.output.decode("utf-8", errors="replace")
            outcome = adapter.read_outcome(text, exit.code)
            receipt = self._from_outcome(outcome, exit.code, text, started)
        if receipt.get("status") != "completed":
            return receipt
        delivered = await delivery.deliver(ws, git_env, on_output)
        return delivery.amend_receipt(receipt, delivered, branch, self.scrubber.scrub)

    @staticmethod
    async def _wait(
        process: AgentProcess, on_output: Callable[[bytes], Awaitable[None]], watch: IdleWatch
    ) -> Exit:
        """The process's end, with the idle watch beside it (it may stop the process)."""
        async with asyncio.TaskGroup() as group:
            guard = group.create_task(watch.guard(process))
            exit = await process.wait(on_output)
            guard.cancel()
        return exit

    def _stalled(self, watch: IdleWatch, shipper: LogShipper, started: float) -> dict[str, Any]:
        limit = int(watch.limit.total_seconds()) if watch.limit else 0
        note = f"no progress for {limit} s: stopped"
        shipper.append(f"\n[agent-fleet] {note}\n".encode())
        log.warning("task stalled", task_id=self.task_id, idle_timeout_secs=limit)
        last = self.output[-4096:].decode("utf-8", errors="replace").strip().splitlines()[-1:]
        error = f"{note}; last output: {tail(last[0], 500)}" if last else note
        receipt = self._receipt("failed", error, started, error=error)
        receipt["reason"] = "stalled"
        return receipt

    def _environment(self, ws: workspaces.Workspace, branch: str) -> dict[str, str]:
        env = {k: v for k, v in self.setup.base_env.items() if not k.startswith("AGENT_FLEET_")}
        env.update(
            agent_environment(
                task_id=self.task_id,
                attempt=self.attempt,
                repo=repo_of(self.task),
                branch=branch,
                prompt_file=str(ws.prompt_file),
                receipt_file=str(ws.receipt_file),
                server_url=self.setup.server,
                lease=self.lease,
                agent_id=self.setup.agent_id,
                token=self.client.credentials.registry_token or "",
            )
        )
        return env

    def _from_outcome(
        self, outcome: CliOutcome, code: int, text: str, started: float
    ) -> dict[str, Any]:
        verdict = judge(outcome, code, text)
        receipt = self._receipt(
            "completed" if verdict.completed else "failed",
            verdict.summary,
            started,
            error=verdict.error,
        )
        receipt["artifacts"] = [{"type": "pr", "url": url} for url in outcome.pr_urls]
        if outcome.usage is not None:
            receipt["usage"] = dataclasses.asdict(outcome.usage)
        return receipt

    def _receipt(
        self, status: str, summary: str, started: float, error: str | None = None
    ) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "agent_id": self.setup.agent_id,
            "lease": self.lease,
            "status": status,
            "summary": bounded_text(self.scrubber.scrub(summary)),
            "duration_seconds": round(time.monotonic() - started, 3),
            "artifacts": [],
            "error": bounded_text(self.scrubber.scrub(error)) if error else None,
        }

    def _fill(self, written: dict[str, Any], started: float) -> dict[str, Any]:
        """The CLI's own receipt wins; we only make it ours to send and scrub its text."""
        receipt = dict(written)
        receipt.update(task_id=self.task_id, agent_id=self.setup.agent_id, lease=self.lease)
        receipt.setdefault("status", "completed")
        receipt.setdefault("duration_seconds", round(time.monotonic() - started, 3))
        for key in ("summary", "error"):
            if isinstance(receipt.get(key), str):
                receipt[key] = bounded_text(self.scrubber.scrub(receipt[key]))
        return receipt


def bounded_text(text: str) -> str:
    """At most RECEIPT_TEXT_BYTES of UTF-8: the server refuses longer receipt text (422,
    `max_event_text_bytes`, never below this), and a refused receipt loses the run's result."""
    raw = text.encode("utf-8")
    if len(raw) <= RECEIPT_TEXT_BYTES:
        return text
    marker = f"\n… ({len(raw)} bytes, cut to fit)"
    keep = RECEIPT_TEXT_BYTES - len(marker.encode("utf-8"))
    return raw[:keep].decode("utf-8", errors="ignore") + marker


def repo_of(task: Mapping[str, Any]) -> str | None:
    repo = (task.get("source") or {}).get("repo")
    return str(repo) if repo else None


def _read_receipt_file(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
