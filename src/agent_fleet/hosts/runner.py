"""`HostRuns` for the configured `[[hosts]]`: agent CLIs started detached in per-attempt
workspaces, found again by surveying each host's work dir (so a restart loses nothing)."""

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

from pydantic import ValidationError

from agent_fleet.adapters.base import AgentAdapter, RunSpec, judge, shows_progress, tail
from agent_fleet.domain.errors import HostUnreachable, InvalidInput, LaunchFailed
from agent_fleet.domain.ids import TaskId
from agent_fleet.domain.states import ReceiptStatus
from agent_fleet.domain.task import branch_for
from agent_fleet.domain.values import Artifact
from agent_fleet.execution import delivery
from agent_fleet.execution.detached import DetachedRuns, RunError, RunPaths, run_paths
from agent_fleet.execution.environment import agent_environment
from agent_fleet.execution.shell import Shell, ShellError
from agent_fleet.ports.hosts import HostRun, RunKey, RunOrder, RunPhase, RunResult
from agent_fleet.wire import MAX_ARTIFACTS, ReceiptWire

OUTPUT_TAIL_BYTES = 1024 * 1024  # what adapters read their result from (JSON comes last)
RECEIPT_MAX_BYTES = 1024 * 1024
STOP_GRACE_SECS = 5.0


@dataclass(frozen=True, slots=True)
class Host:
    host_id: str
    shell: Shell
    work_dir: str
    #: `GIT_SSH_COMMAND` for the host's deploy key (clone and push), else the host's own.
    git_ssh_command: str | None = None
    as_root: bool = False  # the CLIs run as root there (Claude Code then needs IS_SANDBOX=1)


@dataclass(frozen=True, slots=True)
class CommitAuthor:
    """Who commits what an agent CLI left uncommitted."""

    name: str = delivery.DEFAULT_AUTHOR_NAME
    email: str = delivery.DEFAULT_AUTHOR_EMAIL


class HostRunner:
    def __init__(
        self,
        hosts: Sequence[Host],
        *,
        server_url: str,
        adapters: Callable[[str], AgentAdapter],
        git_base_url: str | None,
        stop_grace_secs: float = STOP_GRACE_SECS,
        author: CommitAuthor = CommitAuthor(),
    ) -> None:
        """`adapters`: the adapter of an agent type (raises InvalidInput for an unknown one)."""
        self._runs = {h.host_id: DetachedRuns(h.shell, h.work_dir) for h in hosts}
        self._git_ssh = {h.host_id: h.git_ssh_command for h in hosts}
        self._author = author
        self._as_root = {h.host_id: h.as_root for h in hosts}
        self._server_url = server_url
        self._adapters = adapters
        self._git_base_url = git_base_url.rstrip("/") if git_base_url else None
        self._stop_grace = stop_grace_secs

    def _host(self, host_id: str) -> DetachedRuns:
        return self._runs[host_id]

    def _paths(self, key: RunKey) -> RunPaths:
        return run_paths(self._host(key.host_id).work_dir, key.task_id, key.attempt)

    async def launch(self, order: RunOrder) -> None:
        key = order.key
        runs = self._host(key.host_id)
        paths = self._paths(key)
        clone = (
            f"{self._git_base_url}/{order.repo}.git" if order.repo and self._git_base_url else None
        )
        try:
            adapter = self._adapters(order.agent_type)
        except InvalidInput as e:  # config check refuses this; a belt for the braces
            raise LaunchFailed(str(e)) from e
        spec = RunSpec(
            workspace=paths.work,
            prompt_file=paths.prompt_file,
            receipt_file=paths.receipt_file,
            task_id=key.task_id,
            branch=order.branch,
            repo=order.repo,
        )
        env = agent_environment(
            task_id=key.task_id,
            attempt=key.attempt,
            repo=order.repo,
            branch=order.branch,
            prompt_file=paths.prompt_file,
            receipt_file=paths.receipt_file,
            server_url=self._server_url,
            lease=order.lease,
            agent_id=order.agent_id,
            token=order.lease,  # no registry token on hosts: the lease authorises its receipt
        )
        ssh = self._git_ssh[key.host_id]
        plan = delivery.Plan(
            remote=clone,
            branch=order.branch,
            task_id=key.task_id,
            title=order.title,
            author_name=self._author.name,
            author_email=self._author.email,
            ssh_command=ssh,
        )
        git_env = {"GIT_SSH_COMMAND": ssh} if ssh else None
        env.update(adapter.environment(as_root=self._as_root[key.host_id]))
        try:
            await runs.prepare(paths, key.task_id, order.prompt, clone, order.branch, git_env)
            planned = await runs.shell.run(delivery.plan_argv(paths.meta, paths.work, plan))
            if planned.code != 0:
                raise RunError(f"cannot record the delivery plan: {planned.why()}")
            await runs.launch(paths, adapter.argv(spec), env)
        except ShellError as e:
            raise HostUnreachable(key.host_id, str(e)) from e
        except (RunError, ValueError) as e:
            raise LaunchFailed(str(e)) from e

    async def survey(self, host_id: str) -> list[HostRun]:
        try:
            seen = await self._host(host_id).survey()
        except (ShellError, RunError) as e:
            raise HostUnreachable(host_id, str(e)) from e
        return [
            HostRun(
                key=RunKey(host_id, TaskId(run.task_id), run.attempt),
                phase=RunPhase(run.state.value),
                exit_code=run.exit_code,
                age_secs=run.age_secs,
            )
            for run in seen
        ]

    async def read_log(self, key: RunKey, offset: int, limit: int) -> bytes:
        paths = self._paths(key)
        try:
            data = await self._host(key.host_id).read_from(paths.log_file, offset, limit)
        except (ShellError, RunError) as e:
            raise HostUnreachable(key.host_id, str(e)) from e
        return data or b""

    async def result(self, key: RunKey, agent_type: str, exit_code: int | None) -> RunResult:
        runs = self._host(key.host_id)
        paths = self._paths(key)
        try:
            written = await runs.read_from(paths.receipt_file, 0, RECEIPT_MAX_BYTES)
            output = await _tail_of(runs, paths.log_file)
            delivered = await _delivery(runs, paths) if exit_code == 0 else None
        except (ShellError, RunError) as e:
            raise HostUnreachable(key.host_id, str(e)) from e
        if written:
            receipt = _read_written(written)
            if receipt is not None:
                return _with_delivery(receipt, delivered, key.task_id)
        text = output.decode("utf-8", errors="replace")
        if exit_code is None:
            return RunResult(
                completed=False,
                summary=tail(text),
                error="the run ended without an exit status (killed, or its host restarted)",
            )
        outcome = self._adapters(agent_type).read_outcome(text, exit_code)
        verdict = judge(outcome, exit_code, text)
        result = RunResult(
            completed=verdict.completed,
            summary=verdict.summary,
            error=verdict.error,
            artifacts=tuple(Artifact(type="pr", url=url) for url in outcome.pr_urls),
            usage=outcome.usage,
        )
        return _with_delivery(result, delivered, key.task_id)

    def shows_progress(self, agent_type: str, output: bytes) -> bool:
        return shows_progress(self._adapters(agent_type), output.decode("utf-8", "replace"))

    async def stop(self, key: RunKey) -> None:
        try:
            await self._host(key.host_id).stop(self._paths(key), self._stop_grace)
        except (ShellError, RunError) as e:
            raise HostUnreachable(key.host_id, str(e)) from e

    async def remove(self, key: RunKey) -> None:
        try:
            await self._host(key.host_id).remove(self._paths(key))
        except (ShellError, RunError) as e:
            raise HostUnreachable(key.host_id, str(e)) from e

    async def purge(self, host_id: str, older_than_days: int, completed_after: timedelta) -> None:
        minutes = math.ceil(completed_after.total_seconds() / 60)
        try:
            await self._host(host_id).purge_older_than(older_than_days, minutes)
        except (ShellError, RunError) as e:
            raise HostUnreachable(host_id, str(e)) from e

    async def mark_completed(self, key: RunKey) -> None:
        try:
            await self._host(key.host_id).mark_completed(self._paths(key))
        except (ShellError, RunError) as e:
            raise HostUnreachable(key.host_id, str(e)) from e

    async def close(self) -> None:
        for runs in self._runs.values():
            await runs.shell.close()


async def _tail_of(runs: DetachedRuns, path: str) -> bytes:
    """The last OUTPUT_TAIL_BYTES of a file, in one read when it is small."""
    head = await runs.read_from(path, 0, OUTPUT_TAIL_BYTES + 1)
    if head is None or len(head) <= OUTPUT_TAIL_BYTES:
        return head or b""
    done = await runs.shell.run(["tail", "-c", str(OUTPUT_TAIL_BYTES), "--", path])
    return done.stdout


async def _delivery(runs: DetachedRuns, paths: RunPaths) -> delivery.Delivery | None:
    """What the run's delivery left (one round trip); None for a run launched before
    delivery existed."""
    done = await runs.shell.run(delivery.results_argv(paths.root))
    if done.code != 0:
        raise RunError(f"cannot read the delivery of {paths.root}: {done.why()}")
    return delivery.read_results(done.stdout)


def _with_delivery(
    result: RunResult, delivered: delivery.Delivery | None, task_id: str
) -> RunResult:
    """A completed run whose push failed fails; a pushed branch and the files changed
    become artifacts (as the pull runner reports them)."""
    if delivered is None or not result.completed:
        return result
    if delivered.status is delivery.DeliveryStatus.FAILED:
        return replace(result, completed=False, error=delivered.error)
    extra: list[Artifact] = []
    if delivered.status is delivery.DeliveryStatus.PUSHED:
        extra.append(Artifact(type="branch", name=branch_for(task_id), sha=delivered.sha))
    room = max(0, MAX_ARTIFACTS - len(result.artifacts) - len(extra))
    extra += [Artifact(type="file", path=path) for path in delivered.files[:room]]
    return replace(result, artifacts=(*result.artifacts, *extra))


def _read_written(data: bytes) -> RunResult | None:
    try:
        raw = ReceiptWire.model_validate(json.loads(data))
    except (ValueError, ValidationError):
        return None  # not a receipt: the exit status decides
    usage = raw.usage.to_usage() if raw.usage else None
    return RunResult(
        completed=raw.status is ReceiptStatus.COMPLETED,
        summary=raw.summary,
        error=raw.error,
        artifacts=tuple(a.to_artifact() for a in raw.artifacts),
        usage=usage,
    )
