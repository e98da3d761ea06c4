"""The pull runner's delivery: git credentials kept to git, the plan before the CLI runs,
the commit and push after a completed run, and what the receipt then says.

Credentials (a deploy key, or a token answered through GIT_ASKPASS) reach only the git
commands we run; the agent CLI's environment never holds them.
"""

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent_fleet.execution import delivery as git_delivery
from agent_fleet.execution.delivery import Delivery, DeliveryStatus, Plan
from agent_fleet.execution.workspace import Workspace, WorkspaceError
from agent_fleet.wire import MAX_ARTIFACTS

GIT_TIMEOUT_SECS = 600.0

RESULT_MAX_BYTES = 1024 * 1024
TOKEN_ENV = "AGENT_FLEET_GIT_TOKEN"  # noqa: S105 -- the name of a variable, not a secret
ASKPASS = """#!/bin/sh
# agent-fleet: answers git's credential prompts from the environment git was given.
case "$1" in
  [Uu]sername*) printf '%s\\n' "$AGENT_FLEET_GIT_USERNAME" ;;
  *) printf '%s\\n' "$AGENT_FLEET_GIT_TOKEN" ;;
esac
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class GitOptions:
    """How this agent commits and pushes (`agent-fleet agent --git-…`)."""

    author_name: str = git_delivery.DEFAULT_AUTHOR_NAME
    author_email: str = git_delivery.DEFAULT_AUTHOR_EMAIL
    ssh_key: str | None = None
    known_hosts: str | None = None
    #: An HTTPS token (from AGENT_FLEET_GIT_TOKEN), answered through GIT_ASKPASS.
    token: str | None = None
    username: str = "agent-fleet"

    @property
    def has_credentials(self) -> bool:
        return bool(self.token) or self.ssh_key is not None


def git_environment(
    base_env: Mapping[str, str], options: GitOptions, work_dir: Path
) -> dict[str, str]:
    """The environment of our git commands (clone, delivery), never of the CLI."""
    env = {k: v for k, v in base_env.items() if not k.startswith("AGENT_FLEET_")}
    env["GIT_TERMINAL_PROMPT"] = "0"
    ssh = git_delivery.ssh_command(options.ssh_key, options.known_hosts)
    if ssh is not None:
        env["GIT_SSH_COMMAND"] = ssh
    if options.token:
        env.update(
            GIT_ASKPASS=str(_askpass(work_dir)),
            AGENT_FLEET_GIT_TOKEN=options.token,
            AGENT_FLEET_GIT_USERNAME=options.username,
        )
    if options.has_credentials:
        # The CLI runs as our user and could have edited ~/.gitconfig: ignore it.
        env.update(GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1")
    return env


def _askpass(work_dir: Path) -> Path:
    path = work_dir / ".agent-fleet" / "git-askpass"
    if not path.exists() or path.read_text() != ASKPASS:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.write_text(ASKPASS)
        path.chmod(0o700)
    return path


async def write_plan(
    ws: Workspace, clone: str | None, task: Mapping[str, Any], options: GitOptions
) -> None:
    """Before the CLI starts: what the delivery will need, and where the attempt begins."""
    plan = Plan(
        remote=clone,
        branch=str(task["branch_name"]),
        task_id=str(task["task_id"]),
        title=str(task.get("title") or ""),
        author_name=options.author_name,
        author_email=options.author_email,
    )
    try:
        argv = git_delivery.plan_argv(str(ws.meta), str(ws.work), plan)
    except ValueError as e:
        raise WorkspaceError(str(e)) from e
    code, output = await _run(argv, None, ws.root)
    if code != 0:
        raise WorkspaceError(f"cannot record the delivery plan: {output[-500:]}")


async def deliver(
    ws: Workspace, env: Mapping[str, str], on_output: Callable[[bytes], Awaitable[None]]
) -> Delivery:
    """Commit, push, list: the script's own lines go to the task's log."""
    code, output = await _run(git_delivery.deliver_argv(str(ws.root)), env, ws.root)
    await on_output(output.encode())
    paths = git_delivery.result_paths(str(ws.root))
    return git_delivery.read_delivery(
        _read(paths["status"]),
        _read(paths["files"]),
        _read(paths["error"]),
        missing=f"delivery failed (exit {code}): {output.strip()[-500:]}",
    )


def amend_receipt(
    receipt: dict[str, Any], delivered: Delivery, branch: str, scrub: Callable[[str], str]
) -> dict[str, Any]:
    """The receipt after delivery: a failed push fails it; a pushed branch and the files
    changed become artifacts (`branch` {name, sha}, `file` {path})."""
    if delivered.status is DeliveryStatus.FAILED:
        error = scrub(delivered.error or "delivery failed")[:100_000]
        return {**receipt, "status": "failed", "error": error}
    artifacts = list(receipt.get("artifacts") or [])
    if delivered.status is DeliveryStatus.PUSHED:
        artifacts.append({"type": "branch", "name": branch, "sha": delivered.sha})
    room = max(0, MAX_ARTIFACTS - len(artifacts))
    artifacts += [{"type": "file", "path": path} for path in delivered.files[:room]]
    return {**receipt, "artifacts": artifacts}


async def _run(argv: list[str], env: Mapping[str, str] | None, cwd: Path) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=dict(env) if env is not None else None,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,  # a timeout kills git's children too
    )
    try:
        async with asyncio.timeout(GIT_TIMEOUT_SECS):
            out, _ = await proc.communicate()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        await proc.wait()
        return 124, f"[agent-fleet] git did not finish within {GIT_TIMEOUT_SECS:g}s\n"
    return proc.returncode or 0, out.decode("utf-8", errors="replace")


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read(RESULT_MAX_BYTES)
    except OSError:
        return None
