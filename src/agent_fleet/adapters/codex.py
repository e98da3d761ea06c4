"""OpenAI Codex CLI: `codex exec --json --sandbox MODE --skip-git-repo-check -` (prompt on
stdin), JSONL events on stdout. Checked against codex-cli 0.171.0.

Events read:
- `item.completed` with an `agent_message` item: its `text` is the answer (the last one
  is the summary; releases before 0.40 said `assistant_message`);
- `item.completed` with an `error` item: a warning (e.g. unknown model metadata), not a
  failure;
- `turn.completed` with `usage` {input_tokens (cache reads included), cached_input_tokens,
  cache_write_input_tokens, output_tokens (reasoning included), reasoning_output_tokens};
  summed over turns; Codex reports no cost;
- top-level `error`: "Reconnecting... n/5 (…)" retry notices while the model is away
  (not progress, not yet a failure), or a final error;
- `turn.failed` {error: {message}}: the run failed with that message.
"""

from typing import Any, Literal

from agent_fleet.adapters.base import (
    CliOutcome,
    RunSpec,
    as_count,
    as_dict,
    find_pr_urls,
    json_events,
    json_object,
    tail,
    usage_of,
)

SandboxMode = Literal["read-only", "workspace-write", "danger-full-access"]
SANDBOX_MODES: tuple[SandboxMode, ...] = ("read-only", "workspace-write", "danger-full-access")
DEFAULT_SANDBOX: SandboxMode = "workspace-write"
MESSAGE_TYPES = frozenset({"agent_message", "assistant_message"})
RETRY_PREFIX = "Reconnecting..."


class CodexAdapter:
    name = "codex"

    def __init__(self, sandbox: SandboxMode = DEFAULT_SANDBOX) -> None:
        self.sandbox = sandbox

    def argv(self, spec: RunSpec) -> list[str]:
        # workspace-write: edits and commands inside the workspace without asking (0.171
        # removed --full-auto); "-": the prompt on stdin.
        return [
            "codex",
            "exec",
            "--json",
            "--sandbox",
            self.sandbox,
            "--skip-git-repo-check",
            "--cd",
            spec.workspace,
            "-",
        ]

    def version_argv(self) -> list[str]:
        return ["codex", "--version"]

    def environment(self, *, as_root: bool) -> dict[str, str]:
        return {}

    def is_progress(self, line: str) -> bool:
        """A new event, except the notices Codex prints while it retries a model that
        does not answer (it retries those for ever)."""
        event = json_object(line)
        if event is None:
            return False
        return not (event.get("type") == "error" and _is_retry(event))

    def read_outcome(self, output: str, exit_code: int) -> CliOutcome:
        message: str | None = None
        failure: str | None = None
        last_error: str | None = None
        totals: dict[str, int | None] = dict.fromkeys(_USAGE_FIELDS)
        for event in json_events(output):
            kind = event.get("type")
            item = as_dict(event.get("item"))
            if kind == "item.completed" and _item_type(item) in MESSAGE_TYPES:
                message = str(item.get("text", ""))
            elif kind == "turn.completed":
                _add_usage(totals, as_dict(event.get("usage")))
            elif kind == "turn.failed":
                failure = _message(as_dict(event.get("error")) or event)
            elif kind == "error":
                last_error = _message(event)
        if failure is None and message is None and exit_code != 0 and last_error:
            failure = last_error  # it gave up after its last notice
        return CliOutcome(
            summary=message or failure or tail(output),
            pr_urls=find_pr_urls(message or output),
            usage=usage_of(
                input_tokens=totals["input_tokens"],
                output_tokens=totals["output_tokens"],
                cache_read=totals["cached_input_tokens"],
                cache_write=totals["cache_write_input_tokens"],
            ),
            error=failure,
        )


_USAGE_FIELDS = ("input_tokens", "output_tokens", "cached_input_tokens", "cache_write_input_tokens")


def _add_usage(totals: dict[str, int | None], usage: dict[str, Any]) -> None:
    for key in _USAGE_FIELDS:
        count = as_count(usage.get(key))
        if count is not None:
            totals[key] = (totals[key] or 0) + count


def _item_type(item: dict[str, Any]) -> str:
    kind = item.get("type") or item.get("item_type")
    return kind if isinstance(kind, str) else ""


def _message(detail: dict[str, Any]) -> str:
    return str(detail.get("message") or "codex reported an error")


def _is_retry(event: dict[str, Any]) -> bool:
    return str(event.get("message", "")).startswith(RETRY_PREFIX)
