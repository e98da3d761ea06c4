"""The original's `[adapters.NAME]` CLI templates, read as our argv templates.

The original ran `cli_template` through a shell with the prompt pasted in
(`codex exec --json '{prompt}'`). We never build a shell string and never put the
prompt on a command line (issue text is untrusted). So a template is split like a
shell would split it, and each placeholder is mapped:

- `{prompt}` becomes `{prompt_file}`, the path of a file that holds the prompt (the
  prompt is on the CLI's stdin as well);
- `{repo_path}` and `{work_dir}` become `{workspace}`, `{branch_name}` becomes `{branch}`;
- our own placeholders (`{workspace}`, `{task_id}`, …) stay; any other is refused.

What only a shell can do (pipes, redirects, `;`, `&&`, `$VAR`, backquotes) is refused
with a clear message. The original's two built-in templates are recognised as such:
our own adapter of that type runs them (prompt on stdin, its JSON read).
"""

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agent_fleet.adapters.catalog import BUILT_IN
from agent_fleet.adapters.template import PLACEHOLDERS

#: The original's built-in templates (docs/agent-onboarding-guide.md, "Built-in CLI templates").
ORIGINAL_BUILT_IN_TEMPLATES: dict[str, str] = {
    "codex-cli": "codex exec --json '{prompt}'",
    "claude-code": "claude -p '{prompt}' --output-format json --dangerously-skip-permissions",
}
#: The original's placeholders and ours they become.
RENAMED: dict[str, str] = {
    "prompt": "prompt_file",
    "repo_path": "workspace",
    "work_dir": "workspace",
    "branch_name": "branch",
}
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_SHELL_ONLY = frozenset("|&;<>()$`")


class TemplateNotMappable(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class MappedTemplate:
    """What an `[adapters.NAME]` entry becomes: our built-in adapter, or an argv template."""

    built_in: bool
    command: tuple[str, ...]


def map_template(name: str, cli_template: str) -> MappedTemplate:
    """The argv template (ours) for one of the original's CLI templates."""
    feature = _shell_feature(cli_template)
    if feature is not None:
        raise TemplateNotMappable(
            f"uses {feature!r}, which only a shell understands; Agent Fleet runs commands "
            "without a shell: put the pipeline in a script and name the script here"
        )
    try:
        words = shlex.split(cli_template)
    except ValueError as e:
        raise TemplateNotMappable(f"cannot be split into arguments: {e}") from None
    if not words:
        raise TemplateNotMappable("is empty")
    if _is_original_built_in(name, words):
        return MappedTemplate(built_in=True, command=())
    return MappedTemplate(built_in=False, command=tuple(_map_word(w) for w in words))


def _is_original_built_in(name: str, words: list[str]) -> bool:
    kind = BUILT_IN.get(name)
    return any(
        kind is not None and kind is BUILT_IN[original] and words == shlex.split(template)
        for original, template in ORIGINAL_BUILT_IN_TEMPLATES.items()
    )


def _map_word(word: str) -> str:
    """One argument: placeholders renamed, every other brace escaped (ours are format strings)."""
    parts: list[str] = []
    last = 0
    for match in _PLACEHOLDER.finditer(word):
        parts.append(_escape(word[last : match.start()]))
        parts.append("{" + _ours(match.group(1)) + "}")
        last = match.end()
    parts.append(_escape(word[last:]))
    return "".join(parts)


def _ours(placeholder: str) -> str:
    ours = RENAMED.get(placeholder, placeholder)
    if ours not in PLACEHOLDERS:
        known = sorted({*RENAMED, *PLACEHOLDERS})
        raise TemplateNotMappable(
            f"has the placeholder {{{placeholder}}}, which Agent Fleet does not know; use one "
            "of " + ", ".join("{" + p + "}" for p in known)
        )
    return ours


def _escape(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def _shell_feature(template: str) -> str | None:
    """The first character outside single quotes that a shell would act on, if any."""
    quote: str | None = None
    escaped = False
    for char in template:
        if escaped:
            escaped = False
        elif quote == "'":
            quote = None if char == "'" else quote
        elif char == "\\":
            escaped = True
        elif quote == '"':
            if char == '"':
                quote = None
            elif char in "$`":
                return char
        elif char in "'\"":
            quote = char
        elif char in _SHELL_ONLY:
            return char
    return None


def describe(command: tuple[str, ...]) -> str:
    """A mapped argv as the operator reads it in `config check`."""
    return shlex.join(command)


class OriginalAdapterConfig(BaseModel):
    """The original's `[adapters.NAME]`: a shell-like CLI template, and settings that are
    read and reported (`adapter_notes`), not used."""

    model_config = ConfigDict(extra="ignore", frozen=True)  # like config.Section

    cli_template: str = Field(min_length=1, max_length=4000)
    work_dir: str | None = None
    output_format: str | None = None
    output_parser: str | None = None
    timeout: int | None = Field(default=None, gt=0)

    @field_validator("cli_template")
    @classmethod
    def _mappable(cls, value: str) -> str:
        map_template("", value)  # refuses, with the reason, what cannot run without a shell
        return value

    def mapped(self, name: str) -> MappedTemplate:
        return map_template(name, self.cli_template)


def with_adapters_as_agent_types(data: Any) -> Any:
    """The raw settings with each `[adapters.NAME]` also as `[agent_types.NAME]` (its
    mapped argv); none when it is the original's built-in template: ours runs it."""
    if not isinstance(data, dict) or not isinstance(data.get("adapters"), dict):
        return data
    types = dict(data.get("agent_types") or {})
    for name, entry in data["adapters"].items():
        try:
            mapped = OriginalAdapterConfig.model_validate(entry).mapped(str(name))
        except (ValidationError, TemplateNotMappable):
            continue  # reported under its own key when the settings are validated
        if mapped.built_in:
            continue  # our built-in adapter runs it; [agent_types.NAME] may tune it
        if name in types:
            raise ValueError(f"[adapters.{name}] and [agent_types.{name}]: keep one of them")
        types[name] = {"command": list(mapped.command)}
    return {**data, "agent_types": types}


def adapter_notes(adapters: Mapping[str, OriginalAdapterConfig]) -> list[str]:
    """How each of the original's `[adapters]` runs here, and which of its keys are unused."""
    notes = []
    for name, adapter in adapters.items():
        mapped = adapter.mapped(name)
        if mapped.built_in:
            notes.append(
                f"adapters.{name}: the original's built-in template; Agent Fleet's own "
                f"{name} adapter runs it (prompt on stdin, its JSON output read)"
            )
        else:
            notes.append(
                f"adapters.{name}: runs as the argv {describe(mapped.command)} (no shell; "
                "{prompt} became {prompt_file}, the path of a file holding the prompt, "
                "which is also on stdin)"
            )
        if adapter.timeout is not None:
            notes.append(
                f"adapters.{name}.timeout: not used; a task's timeout_secs (default "
                "[orchestrator] task_timeout_secs) bounds every run"
            )
        if not mapped.built_in and (adapter.output_parser or adapter.output_format):
            notes.append(
                f"adapters.{name}.output_parser/output_format: not used; the summary is the "
                "last JSON line's \"summary\", else the output's tail"
            )
        if adapter.work_dir not in (None, "{repo_path}", "{work_dir}"):
            notes.append(f"adapters.{name}.work_dir: not used; the CLI runs in the task workspace")
    return notes
