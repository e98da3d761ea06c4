"""What every agent-CLI adapter builds (an argv) and reads (an CliOutcome); shared helpers."""

import json
import re
from dataclasses import dataclass
from typing import Any, Protocol

from agent_fleet.domain.values import Usage

_PR_URL = re.compile(r"https?://[^\s\"'<>()]+?/[^\s/\"'<>()]+/[^\s/\"'<>()]+/pulls?/\d+")


@dataclass(frozen=True, slots=True, kw_only=True)
class RunSpec:
    """Everything an adapter may put on a command line (never the prompt itself)."""

    workspace: str
    prompt_file: str
    receipt_file: str
    task_id: str
    branch: str
    repo: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class CliOutcome:
    """What an adapter read from the CLI's output.

    `error` is the CLI's own account of a failure: the run failed when it is set, also
    on exit 0 (aider exits 0 when every model call failed)."""

    summary: str
    pr_urls: tuple[str, ...] = ()
    usage: Usage | None = None
    error: str | None = None


class AgentAdapter(Protocol):
    name: str

    def argv(self, spec: RunSpec) -> list[str]: ...

    def read_outcome(self, output: str, exit_code: int) -> CliOutcome: ...

    def is_progress(self, line: str) -> bool:
        """Whether one line of output shows the run moving (a retry notice does not)."""
        ...

    def version_argv(self) -> list[str] | None:
        """How to ask the CLI its version (None: it has no such flag)."""
        ...

    def environment(self, *, as_root: bool) -> dict[str, str]:
        """Variables the CLI needs in its environment to run headless here."""
        ...


@dataclass(frozen=True, slots=True)
class RunVerdict:
    """What a run without a receipt of its own amounts to (DESIGN §5)."""

    completed: bool
    summary: str
    error: str | None


def judge(outcome: CliOutcome, exit_code: int, output: str) -> RunVerdict:
    """The CLI's own error fails the run; otherwise exit 0 completes, with the output's
    tail as the summary when the adapter found none; any other exit fails with the exit
    code and tail."""
    summary = outcome.summary or tail(output)
    if outcome.error is not None:
        return RunVerdict(completed=False, summary=summary, error=outcome.error)
    if exit_code != 0:
        return RunVerdict(
            completed=False, summary=summary, error=f"exit code {exit_code}: {tail(output, 1000)}"
        )
    return RunVerdict(completed=True, summary=summary, error=None)


def find_pr_urls(text: str) -> tuple[str, ...]:
    """Pull request links (Forgejo/Gitea `/pulls/N`, GitHub `/pull/N`), first seen first."""
    return tuple(dict.fromkeys(m.group(0) for m in _PR_URL.finditer(text)))


def tail(text: str, max_chars: int = 2000) -> str:
    text = text.strip()
    return text if len(text) <= max_chars else "…" + text[-max_chars:]


def json_object(line: str) -> dict[str, Any] | None:
    """One line of JSONL output as an object, or None (blank, text, broken JSON)."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def json_events(output: str) -> list[dict[str, Any]]:
    return [event for line in output.splitlines() if (event := json_object(line)) is not None]


def as_dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_count(value: object) -> int | None:
    """A token count as reported: a non-negative int, else None (absent or malformed)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def usage_of(
    *,
    input_tokens: int | None,
    output_tokens: int | None,
    cache_read: int | None = None,
    cache_write: int | None = None,
    cost_usd: float | None = None,
) -> Usage | None:
    """A Usage whose `tokens` is input + output as the CLI reported them: cache reads and
    writes are shown apart and never added on top. None when nothing was reported."""
    counts = (input_tokens, output_tokens, cache_read, cache_write)
    if all(c is None for c in counts) and cost_usd is None:
        return None
    total = None
    if input_tokens is not None or output_tokens is not None:
        total = (input_tokens or 0) + (output_tokens or 0)
    return Usage(
        tokens=total,
        cost_usd=cost_usd,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
    )


def shows_progress(adapter: AgentAdapter, text: str) -> bool:
    """Whether new output shows the run moving: a whole line the adapter counts as
    progress, or a line still arriving at the end (a big event is being written)."""
    for line in text.splitlines(keepends=True):
        if not line.endswith("\n") or adapter.is_progress(line):
            return True
    return False


class PlainText:
    """Defaults for a CLI without JSON events: every non-blank line is progress."""

    def is_progress(self, line: str) -> bool:
        return bool(line.strip())

    def environment(self, *, as_root: bool) -> dict[str, str]:
        return {}
