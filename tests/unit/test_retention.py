"""Workspace retention in the pull runner: completed ones for keep_completed, the others
for keep_failed, never a running task's."""

import os
import time
from datetime import timedelta
from pathlib import Path

from agent_fleet.execution import workspace as workspaces
from agent_fleet.execution.retention import collect

HOUR = 3600.0


def attempt(work: Path, task: str, *, completed_ago: float | None, touched_ago: float) -> Path:
    ws = workspaces.workspace_for(work, task, 0)
    ws.meta.mkdir(parents=True)
    ws.work.mkdir()
    now = time.time()
    if completed_ago is not None:
        workspaces.mark_completed(ws)
        os.utime(ws.completed_mark, (now - completed_ago, now - completed_ago))
    os.utime(ws.root, (now - touched_ago, now - touched_ago))
    return ws.root


def test_each_kind_is_kept_for_its_own_time(tmp_path: Path) -> None:
    done_old = attempt(tmp_path, "done-old", completed_ago=25 * HOUR, touched_ago=25 * HOUR)
    done_new = attempt(tmp_path, "done-new", completed_ago=HOUR, touched_ago=30 * 24 * HOUR)
    failed_old = attempt(tmp_path, "failed-old", completed_ago=None, touched_ago=8 * 24 * HOUR)
    failed_new = attempt(tmp_path, "failed-new", completed_ago=None, touched_ago=2 * HOUR)
    (tmp_path / "outbox").mkdir()  # not a workspace: never touched
    removed = collect(tmp_path, keep_completed=timedelta(hours=24), keep_failed=timedelta(days=7))
    assert sorted(removed) == sorted([done_old, failed_old])
    assert done_new.exists() and failed_new.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["done-new", "failed-new", "outbox"]


def test_a_running_tasks_workspace_is_never_collected(tmp_path: Path) -> None:
    busy = attempt(tmp_path, "busy", completed_ago=None, touched_ago=30 * 24 * HOUR)
    removed = collect(tmp_path, keep_completed=timedelta(0), keep_failed=timedelta(0), busy={busy})
    assert removed == [] and busy.exists()
