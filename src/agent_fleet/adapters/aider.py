"""aider in one-shot mode: the message from the prompt file, plain-text output.

aider prints lines like `Tokens: 12k sent, 345 received. Cost: $0.04 message,
$0.10 session.`; the last one gives the usage.
"""

import re

from agent_fleet.adapters.base import Outcome, RunSpec, find_pr_urls, tail

_TOKENS = re.compile(r"Tokens:\s*([\d.,]+)(k?)\s*sent,\s*([\d.,]+)(k?)\s*received", re.I)
_COST = re.compile(r"Cost:\s*\$([\d.]+)\s*message,\s*\$([\d.]+)\s*session", re.I)


class AiderAdapter:
    name = "aider"

    def argv(self, spec: RunSpec) -> list[str]:
        return [
            "aider",
            "--message-file",
            spec.prompt_file,
            "--yes-always",
            "--no-pretty",
            "--no-stream",
            "--no-check-update",
        ]

    def read_outcome(self, output: str, exit_code: int) -> Outcome:
        tokens = None
        for match in _TOKENS.finditer(output):
            tokens = (
                (tokens or 0)
                + _count(match.group(1), match.group(2))
                + _count(match.group(3), match.group(4))
            )
        costs = _COST.findall(output)
        cost = float(costs[-1][1]) if costs else None
        return Outcome(
            summary=tail(output),
            pr_urls=find_pr_urls(output),
            tokens=tokens,
            cost_usd=cost,
            is_error=exit_code != 0,
        )


def _count(number: str, k: str) -> int:
    value = float(number.replace(",", ""))
    return int(value * 1000) if k else int(value)
