"""What every agent-CLI adapter builds (an argv) and reads (an Outcome); shared helpers."""

import re
from dataclasses import dataclass
from typing import Protocol

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
class Outcome:
    """What an adapter read from the CLI's output."""

    summary: str
    pr_urls: tuple[str, ...] = ()
    tokens: int | None = None
    cost_usd: float | None = None
    is_error: bool = False


class AgentAdapter(Protocol):
    name: str

    def argv(self, spec: RunSpec) -> list[str]: ...

    def read_outcome(self, output: str, exit_code: int) -> Outcome: ...


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a run without a receipt of its own amounts to (DESIGN §5)."""

    completed: bool
    summary: str
    error: str | None


def judge(outcome: Outcome, exit_code: int, output: str) -> Verdict:
    """Exit 0 (and no error the CLI reported) completes, with the output's tail as the
    summary when the adapter found none; anything else fails with the exit code and tail."""
    ok = exit_code == 0 and not outcome.is_error
    return Verdict(
        completed=ok,
        summary=outcome.summary or tail(output),
        error=None if ok else f"exit code {exit_code}: {tail(output, 1000)}",
    )


def find_pr_urls(text: str) -> tuple[str, ...]:
    """Pull request links (Forgejo/Gitea `/pulls/N`, GitHub `/pull/N`), first seen first."""
    return tuple(dict.fromkeys(m.group(0) for m in _PR_URL.finditer(text)))


def tail(text: str, max_chars: int = 2000) -> str:
    text = text.strip()
    return text if len(text) <= max_chars else "…" + text[-max_chars:]
