"""Collecting old workspaces: completed ones after `keep_completed`, the rest (failed,
stopped) after `keep_failed`, never one still in use."""

import contextlib
import shutil
import time
from collections.abc import Collection
from datetime import timedelta
from pathlib import Path

COMPLETED_MARK = Path("meta") / "completed"


def collect(
    work_dir: Path,
    *,
    keep_completed: timedelta,
    keep_failed: timedelta,
    busy: Collection[Path] = (),
    now: float | None = None,
) -> list[Path]:
    """Remove the attempt directories (`<work_dir>/<task>/attempt-<n>`) past their keep;
    returns what was removed. A completed attempt's age is its mark's; another's, its
    directory's last change."""
    now = time.time() if now is None else now
    removed = []
    for attempt in sorted(work_dir.glob("*/attempt-*")):
        if attempt in busy or not attempt.is_dir():
            continue
        mark = attempt / COMPLETED_MARK
        try:
            if mark.exists():
                age, keep = now - mark.stat().st_mtime, keep_completed
            else:
                age, keep = now - attempt.stat().st_mtime, keep_failed
        except OSError:
            continue  # removed meanwhile
        if age >= keep.total_seconds():
            shutil.rmtree(attempt, ignore_errors=True)
            removed.append(attempt)
            _remove_if_empty(attempt.parent)
    return removed


def _remove_if_empty(directory: Path) -> None:
    with contextlib.suppress(OSError):  # another attempt is still there
        directory.rmdir()
