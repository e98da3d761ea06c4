"""Delivering a run's work: commit what the CLI left, push `task/<id>`, list the files changed.

One fixed POSIX `sh` script does it for both modes: the pull runner runs it after a
completed run, and on an ssh_cli host the detached run runs it after the CLI exits 0.
Its inputs are files under the run's `meta/git/` (written before the CLI starts, by
`plan_files`), never script text, so a task's title or branch is only ever data. Its
results are files too (`meta/delivery`, `meta/changed-files`, `meta/delivery-error`),
read back by `read_delivery`.

The network steps run from a bare repository of our own that borrows the workspace's
objects: config, hooks and credential helpers the CLI may have left in the workspace
never see the push credentials, and workspace commands run without them.
"""

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from posixpath import join as pjoin

#: What a receipt lists at most; the PR shows the full diff.
MAX_LISTED_FILES = 50
MAX_PATH_CHARS = 500
ERROR_TAIL_CHARS = 2000
DEFAULT_AUTHOR_NAME = "agent-fleet"
DEFAULT_AUTHOR_EMAIL = "agent-fleet@localhost"
#: The plan's own files (beside the inputs) in `meta/git/`.
PLAN_DIR = "git"
SCRIPT_NAME = "deliver.sh"
#: Files agent CLIs keep in the workspace that are not work (aider's chat history and
#: tags cache): excluded from what a delivery commits.
SCRATCH_PATTERNS = (".aider*",)
_BRANCH = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._/-]{0,250}$")

# Writes the plan: name/value pairs as positional parameters, then records where the
# attempt started (HEAD after checkout) and the base it is measured against (the
# remote's default branch as cloned). For a delivery, the workspace's own git identity
# is the bot's, so commits the CLI makes itself carry it (aider otherwise writes
# "Your Name <you@example.com>" into the repository's config), and the files CLIs keep
# in the workspace (SCRATCH_PATTERNS) are excluded, so they are never committed, and
# aider, finding `.aider*` ignored, leaves `.gitignore` alone.
PLAN_SCRIPT = r"""
dir=$1; work=$2; shift 2
umask 077
mkdir -p -- "$dir" || exit 1
while [ "$#" -ge 2 ]; do printf '%s' "$2" > "$dir/$1" || exit 1; shift 2; done
[ -d "$work/.git" ] || exit 0
if [ -f "$dir/remote" ]; then
  git -C "$work" config user.name "$(cat "$dir/author_name")" || exit 1
  git -C "$work" config user.email "$(cat "$dir/author_email")" || exit 1
  mkdir -p -- "$work/.git/info" && cat -- "$dir/exclude" >> "$work/.git/info/exclude" || exit 1
fi
git -C "$work" rev-parse --verify -q HEAD > "$dir/start" || : > "$dir/start"
git -C "$work" rev-parse --verify -q refs/remotes/origin/HEAD > "$dir/base" \
  || cp -- "$dir/start" "$dir/base"
"""

DELIVER_SCRIPT = r"""
root=$1
m="$root/meta/git"; w="$root/work"; out="$root/meta"; err="$out/git.err"
rm -f -- "$out/delivery" "$out/changed-files" "$out/delivery-error"
say() { printf '[agent-fleet] %s\n' "$*"; }
result() {
  printf '%s %s\n' "$1" "$2" > "$out/delivery.tmp" && mv -- "$out/delivery.tmp" "$out/delivery"
}
fail() {
  sed -E 's#(://)[^/@[:space:]]+@#\1[redacted]@#g' < "$err" | tail -c 2000 > "$out/delivery-error"
  say "$1 failed: $(tail -n 3 "$out/delivery-error")"
  result failed "$1"
  exit 1
}
if [ ! -f "$m/remote" ]; then
  (cd "$w" && find . -type f -print0) > "$out/changed-files"
  result listed -
  exit 0
fi
remote=$(cat "$m/remote"); branch=$(cat "$m/branch")
start=$(cat "$m/start"); base=$(cat "$m/base")
GIT_AUTHOR_NAME=$(cat "$m/author_name"); GIT_AUTHOR_EMAIL=$(cat "$m/author_email")
GIT_COMMITTER_NAME=$GIT_AUTHOR_NAME; GIT_COMMITTER_EMAIL=$GIT_AUTHOR_EMAIL
export GIT_AUTHOR_NAME GIT_AUTHOR_EMAIL GIT_COMMITTER_NAME GIT_COMMITTER_EMAIL
GIT_TERMINAL_PROMPT=0; export GIT_TERMINAL_PROMPT
if [ -f "$m/ssh_command" ]; then GIT_SSH_COMMAND=$(cat "$m/ssh_command"); export GIT_SSH_COMMAND; fi
# In the workspace: no hooks, no fsmonitor, and no credentials in the environment.
W() {
  (unset AGENT_FLEET_GIT_TOKEN GIT_ASKPASS SSH_ASKPASS
   git -C "$w" -c core.hooksPath=/dev/null -c core.fsmonitor=false -c commit.gpgSign=false \
     "$@" 2> "$err")
}
W add -A || fail "git add"
if ! W diff --cached --quiet; then
  W commit -q --no-verify --cleanup=whitespace -F "$m/message" || fail "git commit"
  say "committed the changes the CLI left uncommitted"
fi
head=$(W rev-parse --verify HEAD) || fail "git rev-parse"
if [ -n "$start" ]; then
  W diff --name-only -z "$start" "$head" > "$out/changed-files" || fail "git diff"
else
  W ls-files -z > "$out/changed-files" || fail "git ls-files"
fi
if [ -n "$base" ] && [ -z "$(W rev-list --max-count=1 "$base..$head")" ]; then
  result unchanged "$head"
  say "no changes to deliver"
  exit 0
fi
p="$out/push.git"
rm -rf -- "$p"
git init -q --bare "$p" 2> "$err" || fail "git init"
printf '%s\n' "$w/.git/objects" > "$p/objects/info/alternates"
P() { git --git-dir="$p" -c core.hooksPath=/dev/null "$@" 2> "$err"; }
theirs=$(P ls-remote "$remote" "refs/heads/$branch") || fail "git ls-remote"
theirs=${theirs%%[[:space:]]*}
if [ -n "$theirs" ] && ! W merge-base --is-ancestor "$theirs" "$head"; then
  # Commits reached the branch meanwhile (a person, an earlier attempt): build on them.
  P fetch -q --no-tags "$remote" "+refs/heads/$branch:refs/fleet/theirs" || fail "git fetch"
  W fetch -q --no-tags "$p" "+refs/fleet/theirs:refs/fleet/theirs" || fail "git fetch"
  if W rebase -q refs/fleet/theirs; then
    say "rebased onto the commits pushed to $branch meanwhile"
  else
    W rebase --abort
    if W merge -q --no-edit refs/fleet/theirs; then
      say "merged the commits pushed to $branch meanwhile"
    else
      cp -- "$err" "$err.keep"; W merge --abort; mv -- "$err.keep" "$err"
      fail "merging the commits pushed to $branch meanwhile"
    fi
  fi
  head=$(W rev-parse --verify HEAD) || fail "git rev-parse"
fi
P fetch -q --no-tags "$w" "+HEAD:refs/heads/$branch" || fail "git fetch"
P push -q "$remote" "refs/heads/$branch:refs/heads/$branch" || fail "git push"
result pushed "$head"
say "pushed $branch at $head"
"""


# The delivery's results in one read (one round trip to a host): for the plan marker
# and each result file, its length and bytes (bounded), or "-" when it does not exist.
RESULTS_SCRIPT = r"""
m="$1/meta"
for f in git/branch delivery changed-files delivery-error; do
  if [ -f "$m/$f" ]; then
    printf '%s\n' "$(head -c "$2" -- "$m/$f" | wc -c)"; head -c "$2" -- "$m/$f"
  else
    printf -- '-\n'
  fi
done
"""
RESULTS_MAX_BYTES = 256 * 1024


class DeliveryStatus(StrEnum):
    PUSHED = "pushed"  # the branch is on the remote, ahead of the base
    UNCHANGED = "unchanged"  # nothing beyond the base: nothing to deliver
    FAILED = "failed"  # a git step failed; `error` says which and why
    LISTED = "listed"  # no repository: the files the run left are listed


@dataclass(frozen=True, slots=True)
class Delivery:
    status: DeliveryStatus
    sha: str | None = None
    files: tuple[str, ...] = ()
    more_files: int = 0  # beyond MAX_LISTED_FILES
    error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """What the delivery needs to know, fixed before the CLI starts."""

    remote: str | None  # the URL the workspace was cloned from; None: no repository
    branch: str
    task_id: str
    title: str
    author_name: str = DEFAULT_AUTHOR_NAME
    author_email: str = DEFAULT_AUTHOR_EMAIL
    ssh_command: str | None = None


def commit_message(title: str, task_id: str) -> str:
    """The task's title (untrusted: one line, no control characters, bounded) and its id."""
    first = next((line for line in title.splitlines() if line.strip()), "")
    clean = "".join(c if c.isprintable() else " " for c in first).strip()[:200]
    return f"{clean or 'agent-fleet task'}\n\nagent-fleet task {task_id}\n"


def plan_files(plan: Plan) -> dict[str, str]:
    """The files under `meta/git/` that the delivery script reads. ValueError for a
    branch name git would read as something else (an option, a refspec, a range)."""
    if not _BRANCH.match(plan.branch) or ".." in plan.branch or plan.branch.endswith((".", "/")):
        raise ValueError(f"not a branch name we push: {plan.branch[:100]!r}")
    files = {"branch": plan.branch, SCRIPT_NAME: DELIVER_SCRIPT}
    if plan.remote is not None:
        files.update(
            remote=plan.remote,
            author_name=_one_line(plan.author_name),
            author_email=_one_line(plan.author_email),
            message=commit_message(plan.title, plan.task_id),
            exclude="".join(f"{pattern}\n" for pattern in SCRATCH_PATTERNS),
        )
        if plan.ssh_command:
            files["ssh_command"] = plan.ssh_command
    return {name: value.replace("\0", "") for name, value in files.items()}


def plan_argv(meta_dir: str, work_dir: str, plan: Plan) -> list[str]:
    """`sh -c PLAN_SCRIPT` writing the plan under `<meta>/git` (values as parameters)."""
    pairs = [item for name, value in plan_files(plan).items() for item in (name, value)]
    return ["sh", "-c", PLAN_SCRIPT, "agent-fleet", pjoin(meta_dir, PLAN_DIR), work_dir, *pairs]


def deliver_argv(root: str) -> list[str]:
    return ["sh", pjoin(root, "meta", PLAN_DIR, SCRIPT_NAME), root]


def ssh_command(key_path: str | None, known_hosts: str | None) -> str | None:
    """`GIT_SSH_COMMAND` for a deploy key: only that key, host keys always checked."""
    if key_path is None and known_hosts is None:
        return None
    parts = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"]
    if key_path is not None:
        parts += ["-o", "IdentitiesOnly=yes", "-i", key_path]
    if known_hosts is not None:
        parts += ["-o", f"UserKnownHostsFile={known_hosts}"]
    return shlex.join(parts)


def read_delivery(
    status_line: bytes | None,
    files: bytes | None,
    error: bytes | None,
    missing: str = "the delivery left no result",
) -> Delivery:
    """The delivery's result files, as the script left them (None: a file is missing)."""
    line = (status_line or b"").decode("utf-8", errors="replace").strip()
    word, _, rest = line.partition(" ")
    try:
        status = DeliveryStatus(word)
    except ValueError:
        return Delivery(DeliveryStatus.FAILED, error=missing)
    detail = rest.strip() if rest.strip() not in ("", "-") else None
    paths = [_path(raw) for raw in (files or b"").split(b"\0") if raw]
    if status is DeliveryStatus.FAILED:
        why = (error or b"").decode("utf-8", errors="replace").strip()[-ERROR_TAIL_CHARS:]
        return Delivery(status, error=f"{detail or 'git'} failed: {why or 'no message'}")
    return Delivery(
        status,
        sha=detail if status is not DeliveryStatus.LISTED else None,
        files=tuple(paths[:MAX_LISTED_FILES]),
        more_files=max(0, len(paths) - MAX_LISTED_FILES),
    )


def results_argv(root: str) -> list[str]:
    return ["sh", "-c", RESULTS_SCRIPT, "agent-fleet", root, str(RESULTS_MAX_BYTES)]


def read_results(output: bytes) -> Delivery | None:
    """What `results_argv` printed; None when the run had no delivery planned (it was
    launched before delivery existed)."""
    parts: list[bytes | None] = []
    rest = output
    for _ in range(4):
        head, _, rest = rest.partition(b"\n")
        if head.strip() == b"-" or not head.strip().isdigit():
            parts.append(None)
            continue
        size = int(head)
        parts.append(rest[:size])
        rest = rest[size:]
    planned, status, files, error = parts
    if planned is None:
        return None
    return read_delivery(status, files, error)


def result_paths(root: str) -> Mapping[str, str]:
    meta = pjoin(root, "meta")
    return {
        "status": pjoin(meta, "delivery"),
        "files": pjoin(meta, "changed-files"),
        "error": pjoin(meta, "delivery-error"),
    }


def _path(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace").removeprefix("./")[:MAX_PATH_CHARS]


def _one_line(text: str) -> str:
    return " ".join(text.split())[:200]
