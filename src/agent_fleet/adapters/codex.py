"""OpenAI Codex CLI: `codex exec --json -` (prompt on stdin), JSONL events on stdout.

Events read: `item.completed` with an `agent_message` item (its `text` is the
answer; older releases said `assistant_message`), `turn.completed` with
`usage` {input_tokens, cached_input_tokens, output_tokens}, `turn.failed` and
`error` with a message.
"""

import json
from typing import Any

from agent_fleet.adapters.base import Outcome, RunSpec, find_pr_urls, tail

MESSAGE_TYPES = frozenset({"agent_message", "assistant_message"})


class CodexAdapter:
    name = "codex"

    def argv(self, spec: RunSpec) -> list[str]:
        # --full-auto: edits and commands in the workspace without asking; "-": prompt on stdin.
        return [
            "codex",
            "exec",
            "--json",
            "--full-auto",
            "--skip-git-repo-check",
            "--cd",
            spec.workspace,
            "-",
        ]

    def read_outcome(self, output: str, exit_code: int) -> Outcome:
        message, error, tokens = None, None, None
        for event in _events(output):
            kind = event.get("type")
            item = _dict(event.get("item"))
            if (
                kind == "item.completed"
                and _str(item.get("type") or item.get("item_type")) in MESSAGE_TYPES
            ):
                message = str(item.get("text", ""))
            elif kind == "turn.completed" and isinstance(event.get("usage"), dict):
                usage = _dict(event["usage"])
                tokens = (
                    (tokens or 0)
                    + _int(usage.get("input_tokens"))
                    + _int(usage.get("output_tokens"))
                )
            elif kind in ("turn.failed", "error"):
                detail = _dict(event.get("error")) or event
                error = str(detail.get("message", "codex reported an error"))
        summary = message or error or tail(output)
        return Outcome(
            summary=summary,
            pr_urls=find_pr_urls(message or output),
            tokens=tokens,
            is_error=error is not None and message is None,
        )


def _events(output: str) -> list[dict[str, Any]]:
    events = []
    for line in output.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                events.append(value)
    return events


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0
