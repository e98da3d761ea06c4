"""Per-task, per-attempt workspaces under a work dir, safe against hostile task ids."""

import asyncio
import contextlib
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
GIT_TIMEOUT_SECS = 600


class WorkspaceError(Exception):
    """The workspace could not be prepared (clone failed, disk full, ...)."""


def safe_name(task_id: str) -> str:
    """A single path component: no separators, no `..`, never empty."""
    name = _UNSAFE.sub("_", task_id).strip(".") or "task"
    return name[:128]


@dataclass(frozen=True, slots=True)
class Workspace:
    root: Path  # the attempt's directory; the CLI runs in `root / "work"`
    task_id: str
    attempt: int

    @property
    def work(self) -> Path:
        return self.root / "work"

    @property
    def meta(self) -> Path:
        """Our files (prompt, receipt, output), beside the CLI's work tree, not in it."""
        return self.root / "meta"

    @property
    def prompt_file(self) -> Path:
        return self.meta / "prompt.md"

    @property
    def receipt_file(self) -> Path:
        return self.meta / "receipt.json"

    @property
    def output_file(self) -> Path:
        return self.meta / "output.log"

    @property
    def completed_mark(self) -> Path:
        """Present once the attempt completed; its age says when to collect the workspace."""
        return self.meta / "completed"


def workspace_for(work_dir: Path, task_id: str, attempt: int) -> Workspace:
    root = (work_dir / safe_name(task_id) / f"attempt-{int(attempt)}").resolve()
    if work_dir.resolve() not in root.parents:
        raise WorkspaceError(f"workspace for {task_id!r} would leave {work_dir}")
    return Workspace(root=root, task_id=task_id, attempt=attempt)


async def prepare(
    ws: Workspace,
    prompt: str,
    clone_url: str | None,
    branch: str,
    env: Mapping[str, str] | None = None,
) -> None:
    """A fresh directory with the prompt file; a clone on `branch` when there is a repo.
    `env` is git's environment (its credentials), never the CLI's."""
    if ws.root.exists():
        shutil.rmtree(ws.root)  # a re-delivered attempt starts clean
    ws.meta.mkdir(parents=True)
    ws.prompt_file.write_text(prompt, encoding="utf-8")
    if clone_url is None:
        ws.work.mkdir()
        return
    await _git("clone", "--quiet", "--", clone_url, str(ws.work), env=env)
    # The branch may exist already (a retry): check it out, else create it.
    try:
        await _git("-C", str(ws.work), "checkout", "--quiet", branch, env=env)
    except WorkspaceError:
        await _git("-C", str(ws.work), "checkout", "--quiet", "-b", branch, env=env)


async def _git(*args: str, env: Mapping[str, str] | None = None) -> None:
    proc = await asyncio.create_subprocess_exec(
        "git",
        *args,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env) if env is not None else None,
    )
    try:
        async with asyncio.timeout(GIT_TIMEOUT_SECS):
            _, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise WorkspaceError(f"git {args[0]} timed out") from None
    if proc.returncode != 0:
        raise WorkspaceError(
            f"git {' '.join(args[:2])} failed: {err.decode(errors='replace')[-500:]}"
        )


def remove(ws: Workspace) -> None:
    shutil.rmtree(ws.root, ignore_errors=True)
    with contextlib.suppress(OSError):
        ws.root.parent.rmdir()  # the task's directory, once no attempt is left in it


def mark_completed(ws: Workspace) -> None:
    ws.completed_mark.touch()
