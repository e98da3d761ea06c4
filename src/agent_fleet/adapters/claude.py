"""Claude Code: `claude -p --output-format stream-json --verbose` (prompt on stdin), one JSON
event per line, the last one the result. Checked against Claude Code 2.1.197.

Events: `system` (`init`; `api_retry` while the model does not answer: not progress),
`assistant` and `user` (each turn and tool result: progress), and `result` {result (the
answer, or the failure's text), is_error, subtype, total_cost_usd (`cost_usd` in older
releases), usage {input_tokens, cache_creation_input_tokens, cache_read_input_tokens,
output_tokens}}. Claude's input_tokens exclude cache reads and writes; those are shown
apart. As root it refuses to skip permission prompts unless IS_SANDBOX=1 says the
machine is a sandbox: the workspace is the boundary, so we say so.
"""

from typing import Any

from agent_fleet.adapters.base import (
    CliOutcome,
    RunSpec,
    as_count,
    as_dict,
    find_pr_urls,
    json_object,
    tail,
    usage_of,
)
from agent_fleet.domain.values import Usage


class ClaudeAdapter:
    name = "claude"

    def argv(self, spec: RunSpec) -> list[str]:
        # Headless: no one is there to approve edits, so the workspace is the boundary.
        # stream-json (with --verbose, which it requires) prints as it works, so a silent
        # run is a stalled one.
        return [
            "claude",
            "-p",
            "--output-format",
            "stream-json",
            "--verbose",
            "--permission-mode",
            "bypassPermissions",
        ]

    def version_argv(self) -> list[str]:
        return ["claude", "--version"]

    def environment(self, *, as_root: bool) -> dict[str, str]:
        return {"IS_SANDBOX": "1"} if as_root else {}

    def is_progress(self, line: str) -> bool:
        event = json_object(line)
        if event is None:
            return False
        return not (event.get("type") == "system" and event.get("subtype") == "api_retry")

    def read_outcome(self, output: str, exit_code: int) -> CliOutcome:
        result = _last_result(output)
        if result is None:
            return CliOutcome(summary=tail(output), pr_urls=find_pr_urls(output))
        is_error = bool(result.get("is_error"))
        text = str(result.get("result") or result.get("subtype") or "")
        usage = as_dict(result.get("usage"))
        cost = result.get("total_cost_usd", result.get("cost_usd"))
        # A failed run says 0.0 for "nothing was spent that we know of": unknown, not free.
        reported_cost = (
            float(cost) if isinstance(cost, int | float) and (cost > 0 or not is_error) else None
        )
        return CliOutcome(
            summary=text or tail(output),
            pr_urls=find_pr_urls(text),
            usage=_usage(usage, reported_cost),
            error=(text or "claude reported an error") if is_error else None,
        )


def _usage(usage: dict[str, Any], cost: float | None) -> Usage | None:
    counts = {
        key: as_count(usage.get(key))
        for key in (
            "input_tokens",
            "output_tokens",
            "cache_read_input_tokens",
            "cache_creation_input_tokens",
        )
    }
    if not any(counts.values()) and cost is None:
        return None  # nothing used, or nothing said
    return usage_of(
        input_tokens=counts["input_tokens"],
        output_tokens=counts["output_tokens"],
        cache_read=counts["cache_read_input_tokens"],
        cache_write=counts["cache_creation_input_tokens"],
        cost_usd=cost,
    )


def _last_result(output: str) -> dict[str, Any] | None:
    """The result: the last `result` event, or the whole output as one object (json mode)."""
    for line in reversed(output.strip().splitlines()):
        event = json_object(line)
        if event is not None and ("result" in event or event.get("type") == "result"):
            return event
    whole = json_object(output.replace("\n", " "))
    if whole is not None and ("result" in whole or whole.get("type") == "result"):
        return whole
    return None
