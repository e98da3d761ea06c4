"""Claude Code: `claude -p --output-format json` (prompt on stdin), one JSON result object.

Fields read: `result` (the answer), `is_error`, `subtype`, `total_cost_usd`
(`cost_usd` in older releases), `usage` {input_tokens, output_tokens, ...}.
"""

import json
from typing import Any

from agent_fleet.adapters.base import Outcome, RunSpec, find_pr_urls, tail


class ClaudeAdapter:
    name = "claude"

    def argv(self, spec: RunSpec) -> list[str]:
        # Headless: no one is there to approve edits, so the workspace is the boundary.
        return ["claude", "-p", "--output-format", "json", "--permission-mode", "bypassPermissions"]

    def read_outcome(self, output: str, exit_code: int) -> Outcome:
        result = _last_result(output)
        if result is None:
            return Outcome(
                summary=tail(output), pr_urls=find_pr_urls(output), is_error=exit_code != 0
            )
        text = str(result.get("result") or result.get("subtype") or "")
        raw_usage = result.get("usage")
        usage: dict[str, Any] = raw_usage if isinstance(raw_usage, dict) else {}
        tokens = sum(
            int(v) for k, v in usage.items() if k.endswith("_tokens") and isinstance(v, int)
        )
        cost = result.get("total_cost_usd", result.get("cost_usd"))
        return Outcome(
            summary=text or tail(output),
            pr_urls=find_pr_urls(text),
            tokens=tokens or None,
            cost_usd=float(cost) if isinstance(cost, int | float) else None,
            is_error=bool(result.get("is_error")),
        )


def _last_result(output: str) -> dict[str, Any] | None:
    """The result object: the whole output, or its last JSON line (stream-json style)."""
    candidates = [output.strip(), *reversed(output.strip().splitlines())]
    for text in candidates:
        if not text.startswith("{"):
            continue
        try:
            value = json.loads(text)
        except ValueError:
            continue
        if isinstance(value, dict) and ("result" in value or value.get("type") == "result"):
            return value
    return None
