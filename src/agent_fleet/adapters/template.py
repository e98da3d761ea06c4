"""Any CLI as an agent: an argv template with a few named placeholders, never a shell."""

import json
import string

from agent_fleet.adapters.base import CliOutcome, PlainText, RunSpec, find_pr_urls, tail
from agent_fleet.domain.errors import InvalidInput

PLACEHOLDERS = frozenset({"prompt_file", "workspace", "receipt_file", "task_id", "branch", "repo"})


class TemplateAdapter(PlainText):
    name = "template"

    def __init__(self, command: list[str]) -> None:
        if not command:
            raise InvalidInput("command", "an agent command needs at least the program")
        for part in command:
            for _, field, spec, conversion in string.Formatter().parse(part):
                if field is None:
                    continue
                if field not in PLACEHOLDERS or spec or conversion:
                    allowed = ", ".join("{" + p + "}" for p in sorted(PLACEHOLDERS))
                    raise InvalidInput("command", f"unknown placeholder {{{field}}}; use {allowed}")
        self.command = list(command)

    def version_argv(self) -> None:
        return None  # any program: it may not know --version (its presence is checked)

    def argv(self, spec: RunSpec) -> list[str]:
        values = {
            "prompt_file": spec.prompt_file,
            "workspace": spec.workspace,
            "receipt_file": spec.receipt_file,
            "task_id": spec.task_id,
            "branch": spec.branch,
            "repo": spec.repo or "",
        }
        # Each element stays one argument whatever the values hold.
        return [part.format_map(values) for part in self.command]

    def read_outcome(self, output: str, exit_code: int) -> CliOutcome:
        last = next((line for line in reversed(output.splitlines()) if line.strip()), "")
        try:
            data = json.loads(last)
        except ValueError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("summary"), str):
            urls = [data["pr_url"]] if isinstance(data.get("pr_url"), str) else []
            return CliOutcome(summary=data["summary"], pr_urls=tuple(urls) or find_pr_urls(output))
        return CliOutcome(summary=tail(output), pr_urls=find_pr_urls(output))
