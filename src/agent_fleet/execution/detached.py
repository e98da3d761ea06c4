"""Agent runs that outlive the orchestrator: started under their own session on a host,
leaving a pid file, an exit-code file and a log file in the run's directory.

Everything here is a fixed POSIX `sh` script; paths, argv and environment values
reach it only as positional parameters or files, never as script text, so no task
text can ever be executed. The same scripts serve the local and the SSH shell.
"""

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from posixpath import join as pjoin

from agent_fleet.execution.shell import Completed, Shell, ShellError
from agent_fleet.execution.workspace import safe_name

GIT_TIMEOUT_SECS = 600.0
LAUNCH_TIMEOUT_SECS = 30.0
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")

# Starts the run and returns once its pid file exists. `setsid` gives it a session
# and process group of its own, so it survives our connection and a kill reaches its
# children. Its shell traps TERM (a handler, not "ignore", so the CLI keeps the default)
# to outlive a cancel long enough to write the CLI's exit code.
_LAUNCH = r"""
root=$1; shift
cd "$root/work" || exit 97
setsid sh -lc '
  root=$1; shift
  echo $$ > "$root/meta/pid.tmp" && mv "$root/meta/pid.tmp" "$root/meta/pid"
  trap ": stopping" TERM
  . "$root/meta/env"
  "$@" < "$root/meta/prompt.md" >> "$root/meta/output.log" 2>&1
  code=$?
  # A completed run delivers its work (execution/delivery.py) before its exit is recorded.
  if [ "$code" -eq 0 ] && [ -f "$root/meta/git/deliver.sh" ]; then
    sh "$root/meta/git/deliver.sh" "$root" >> "$root/meta/output.log" 2>&1
  fi
  echo "$code" > "$root/meta/exit.tmp" && mv "$root/meta/exit.tmp" "$root/meta/exit"
' agent-fleet-run "$root" "$@" < /dev/null > /dev/null 2>&1 &
i=0
while [ ! -s "$root/meta/pid" ] && [ "$i" -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
[ -s "$root/meta/pid" ] || exit 98
"""

# One line per run under the work dir: state, exit code, age in seconds, attempt
# directory, task id (tab-separated; task ids hold no tabs). Runs are removed and made
# while it looks: each file is read once, and a run whose files vanish is skipped, never
# an error (a failed survey marks the whole host down). A run found dead is looked at
# again for its exit code, which it may have written since the first look.
_SURVEY = r"""
now=$(date +%s)
for meta in "$1"/*/attempt-*/meta; do
  task=$(cat "$meta/task_id" 2>/dev/null) && [ -n "$task" ] || continue
  changed=$(stat -c %Y "$meta" 2>/dev/null) || continue
  age=$((now - changed))
  run=${meta%/meta}
  if code=$(cat "$meta/exit" 2>/dev/null); then
    state=exited
  elif pid=$(cat "$meta/pid" 2>/dev/null) && [ -n "$pid" ]; then
    code=-
    if kill -0 "$pid" 2>/dev/null; then
      state=alive
    elif code=$(cat "$meta/exit" 2>/dev/null); then
      state=exited
    else
      code=- state=vanished
    fi
  else
    code=- state=preparing
  fi
  printf '%s\t%s\t%s\t%s\t%s\n' "$state" "$code" "$age" "${run##*/}" "$task"
done
"""

# TERM to the run's process group, up to `grace` for it to end, then KILL what is left.
_STOP = r"""
pid=$(cat "$1/meta/pid" 2>/dev/null) || exit 0
case $pid in ''|*[!0-9]*) exit 0 ;; esac
kill -TERM "-$pid" 2>/dev/null || exit 0
i=0
# Until the group is gone or the run recorded its exit (orphans can linger as zombies).
while kill -0 "-$pid" 2>/dev/null && [ ! -f "$1/meta/exit" ] && [ "$i" -lt "$2" ]; do
  sleep 0.1; i=$((i + 1))
done
kill -KILL "-$pid" 2>/dev/null
exit 0
"""

_PREPARE = r"""
root=$1; task=$2
rm -rf -- "$root"
mkdir -p -- "$root/meta" || exit 1
printf '%s\n' "$task" > "$root/meta/task_id"
cat > "$root/meta/prompt.md"
"""

_WRITE = r"""umask 077; cat > "$1" """

# The attempt's directory, then its task's directory once no attempt is left in it.
_REMOVE = r"""rm -rf -- "$1" && rmdir -- "${1%/*}" 2>/dev/null; exit 0"""

_READ_FROM = r"""
[ -f "$1" ] || exit 3
tail -c "+$(($2 + 1))" -- "$1" | head -c "$3"
"""

# Completed attempts (marked meta/completed) once the mark is $3 minutes old; the others
# (failed, stopped) once untouched for $2 days; then task directories left empty.
_PURGE = r"""
find "$1" -mindepth 2 -maxdepth 2 -name 'attempt-*' ! -exec test -e '{}/meta/completed' ';' \
  -mtime "+$2" -exec rm -rf -- {} +
find "$1" -mindepth 4 -maxdepth 4 -path '*/attempt-*/meta/completed' -mmin "+$3" |
while IFS= read -r mark; do
  run=${mark%/meta/completed}
  rm -rf -- "$run"
done
find "$1" -mindepth 1 -maxdepth 1 -type d -empty -delete 2>/dev/null
exit 0
"""

_MARK_COMPLETED = r"""[ -d "$1/meta" ] && touch -- "$1/meta/completed"; exit 0"""


class RunState(StrEnum):
    PREPARING = "preparing"  # directory made, process not (yet) started
    ALIVE = "alive"
    EXITED = "exited"  # exit code recorded
    VANISHED = "vanished"  # no process and no exit code: killed hard, or the host rebooted


@dataclass(frozen=True, slots=True)
class RunPaths:
    """A run's directory on its host: `<work_dir>/<task>/attempt-<n>/{work,meta}`."""

    root: str

    @property
    def work(self) -> str:
        return pjoin(self.root, "work")

    @property
    def meta(self) -> str:
        return pjoin(self.root, "meta")

    @property
    def prompt_file(self) -> str:
        return pjoin(self.meta, "prompt.md")

    @property
    def receipt_file(self) -> str:
        return pjoin(self.meta, "receipt.json")

    @property
    def log_file(self) -> str:
        return pjoin(self.meta, "output.log")


def run_paths(work_dir: str, task_id: str, attempt: int) -> RunPaths:
    # safe_name leaves one path component without separators or "..": nothing escapes.
    return RunPaths(pjoin(work_dir, safe_name(task_id), f"attempt-{int(attempt)}"))


@dataclass(frozen=True, slots=True)
class SeenRun:
    task_id: str
    attempt: int
    state: RunState
    exit_code: int | None
    age_secs: int


class RunError(Exception):
    """The host answered, but the step failed (clone, launch, a missing file)."""


class DetachedRuns:
    """The operations on one host's runs, each one short command through its shell."""

    def __init__(self, shell: Shell, work_dir: str) -> None:
        self.shell = shell
        self.work_dir = work_dir

    async def _sh(
        self, script: str, *args: str, stdin: bytes = b"", limit_secs: float = 30.0
    ) -> Completed:
        return await self.shell.run(["sh", "-c", script, "agent-fleet", *args], stdin, limit_secs)

    async def prepare(
        self,
        paths: RunPaths,
        task_id: str,
        prompt: str,
        clone_url: str | None,
        branch: str,
        git_env: Mapping[str, str] | None = None,
    ) -> None:
        """A fresh run directory holding the prompt; a clone on `branch` when there is a repo.
        `git_env` (a deploy key's GIT_SSH_COMMAND) is git's alone, never the CLI's."""
        done = await self._sh(_PREPARE, paths.root, task_id, stdin=prompt.encode())
        if done.code != 0:
            raise RunError(f"cannot prepare {paths.root}: {done.why()}")
        if clone_url is None:
            await self._must(["mkdir", "-p", "--", paths.work], "mkdir")
            return
        git = ["env", *(f"{k}={v}" for k, v in (git_env or {}).items()), "git"]
        await self._must(
            [*git, "clone", "--quiet", "--", clone_url, paths.work],
            "git clone",
            limit_secs=GIT_TIMEOUT_SECS,
        )
        checkout = await self.shell.run(["git", "-C", paths.work, "checkout", "--quiet", branch])
        if checkout.code != 0:  # a first attempt: the branch does not exist yet
            await self._must(
                ["git", "-C", paths.work, "checkout", "--quiet", "-b", branch], "git checkout"
            )

    async def launch(self, paths: RunPaths, argv: Sequence[str], env: Mapping[str, str]) -> None:
        lines = []
        for name, value in env.items():
            if not _ENV_NAME.match(name):
                raise RunError(f"invalid environment variable name {name!r}")
            lines.append(f"export {name}={shlex.quote(value)}\n")
        # The environment (it holds the lease) goes in a 0600 file, not on a command line
        # other users of the host could read in `ps`.
        wrote = await self._sh(_WRITE, pjoin(paths.meta, "env"), stdin="".join(lines).encode())
        if wrote.code != 0:
            raise RunError(f"cannot write the environment file: {wrote.why()}")
        done = await self._sh(_LAUNCH, paths.root, *argv, limit_secs=LAUNCH_TIMEOUT_SECS)
        if done.code != 0:
            raise RunError(f"cannot start {argv[0]} (exit {done.code}): {done.why()}")

    async def survey(self) -> list[SeenRun]:
        done = await self._sh(_SURVEY, self.work_dir)
        if done.code != 0:
            raise RunError(f"cannot list runs under {self.work_dir}: {done.why()}")
        return [run for line in done.text().splitlines() if (run := _parse_seen(line))]

    async def read_from(self, path: str, offset: int, limit: int) -> bytes | None:
        """Up to `limit` bytes of a file from `offset`; None when the file does not exist."""
        done = await self._sh(_READ_FROM, path, str(int(offset)), str(int(limit)))
        if done.code == 3:
            return None
        if done.code != 0:
            raise RunError(f"cannot read {path}: {done.why()}")
        return done.stdout

    async def stop(self, paths: RunPaths, grace_secs: float) -> None:
        ticks = str(max(1, int(grace_secs * 10)))
        done = await self._sh(_STOP, paths.root, ticks, limit_secs=grace_secs + 30)
        if done.code != 0:
            raise RunError(f"cannot stop the run in {paths.root}: {done.why()}")

    async def remove(self, paths: RunPaths) -> None:
        await self._sh(_REMOVE, paths.root)

    async def purge_older_than(self, days: int, completed_minutes: int) -> None:
        """Failed runs older than `days`, completed ones marked `completed_minutes` ago."""
        await self._sh(
            _PURGE, self.work_dir, str(int(days)), str(int(completed_minutes)), limit_secs=120
        )

    async def mark_completed(self, paths: RunPaths) -> None:
        await self._sh(_MARK_COMPLETED, paths.root)

    async def _must(self, argv: list[str], what: str, limit_secs: float = 30.0) -> None:
        done = await self.shell.run(argv, limit_secs=limit_secs)
        if done.code != 0:
            raise RunError(f"{what} failed (exit {done.code}): {done.why()}")


def _parse_seen(line: str) -> SeenRun | None:
    parts = line.split("\t")
    if len(parts) != 5 or not parts[3].startswith("attempt-"):
        return None
    state, code, age, attempt_dir, task_id = parts
    try:
        return SeenRun(
            task_id=task_id,
            attempt=int(attempt_dir.removeprefix("attempt-")),
            state=RunState(state),
            exit_code=int(code) if code.strip().lstrip("-").isdigit() else None,
            age_secs=int(age),
        )
    except ValueError:
        return None


__all__ = ["DetachedRuns", "RunError", "RunPaths", "RunState", "SeenRun", "ShellError"]
