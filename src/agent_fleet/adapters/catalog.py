"""The built-in agent types and their adapters, and the adapter of a configured type."""

from agent_fleet.adapters.aider import AiderAdapter
from agent_fleet.adapters.base import AgentAdapter
from agent_fleet.adapters.claude import ClaudeAdapter
from agent_fleet.adapters.codex import DEFAULT_SANDBOX, CodexAdapter, SandboxMode
from agent_fleet.adapters.template import TemplateAdapter
from agent_fleet.domain.errors import InvalidInput

BUILT_IN: dict[str, type[CodexAdapter | ClaudeAdapter | AiderAdapter]] = {
    "codex": CodexAdapter,
    "codex-cli": CodexAdapter,
    "claude": ClaudeAdapter,
    "claude-code": ClaudeAdapter,
    "aider": AiderAdapter,
}


class UnknownAgentType(InvalidInput):
    def __init__(self, agent_type: str) -> None:
        known = ", ".join(sorted(BUILT_IN))
        super().__init__(
            "agent_type",
            f"{agent_type!r} is not built in ({known}); give its command after --",
        )


def adapter_for(
    agent_type: str, command: list[str] | None = None, *, sandbox: SandboxMode | None = None
) -> AgentAdapter:
    """A given command always wins; else the built-in adapter of that type (`sandbox`:
    Codex's sandbox mode, from `[agent_types.<type>] sandbox`)."""
    if command:
        return TemplateAdapter(command)
    kind = BUILT_IN.get(agent_type)
    if kind is CodexAdapter:
        return CodexAdapter(sandbox or DEFAULT_SANDBOX)
    if kind is not None:
        return kind()
    raise UnknownAgentType(agent_type)
