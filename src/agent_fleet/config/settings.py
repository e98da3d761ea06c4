"""Typed settings from `config.toml` (the original's sections and keys) and the environment.

Errors name the file, the dotted key and the reason. A key that no model
declares is an error with a "did you mean" hint (`config_keys`): a misspelt
secret's key must not start an open server. Keys of the original service that
we knowingly ignore are notes. An empty or blank secret is an error too: it
would otherwise read as "no token" and turn authentication off.

Over 300 lines: one model per section of the file, as the reference
(docs/configuration.md) lists them; the key check, the original's `[adapters]` and
what `config check` prints live beside it (`keys`, `original`, `render`).
"""

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from agent_fleet.adapters.catalog import BUILT_IN
from agent_fleet.adapters.codex import SandboxMode
from agent_fleet.config.keys import check_keys
from agent_fleet.config.original import (
    OriginalAdapterConfig,
    adapter_notes,
    with_adapters_as_agent_types,
)
from agent_fleet.domain.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("config.toml")
#: A shorter token can be guessed; the server still starts, with a warning.
MIN_TOKEN_CHARS = 16
DEFAULT_IDLE_TIMEOUT_SECS = 300.0
SafeId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
#: A budget in USD: a positive, finite number.
Usd = Annotated[float, Field(gt=0, allow_inf_nan=False)]
#: `owner/name` of a repository, or `*` for every repository not named.
RepoKey = Annotated[str, Field(max_length=200, pattern=r"^(\*|[^/\s]+/[^/\s]+)$")]

#: Environment variables that win over the file (secrets and the store URL).
ENV_OVERRIDES: dict[str, tuple[str, str]] = {
    "AGENT_FLEET_ADMIN_TOKEN": ("server", "admin_token"),
    "AGENT_FLEET_HTTP_PULL_TOKEN": ("orchestrator", "http_pull_token"),
    "AGENT_FLEET_FORGEJO_TOKEN": ("forgejo", "token"),
    "AGENT_FLEET_WEBHOOK_SECRET": ("forgejo", "webhook_secret"),
    "AGENT_FLEET_DB_URL": ("orchestrator", "db_url"),
}


CommentStep = Literal["picked_up", "pr_opened", "completed", "failed", "retried"]
COMMENT_STEPS: tuple[CommentStep, ...] = (
    "picked_up",
    "pr_opened",
    "completed",
    "failed",
    "retried",
)


class Section(BaseModel):
    # Unknown keys are reported with a hint before validation (`check_keys`);
    # "forbid" is the backstop for anything that check did not walk into.
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="after")
    @classmethod
    def _no_blank_secret(cls, value: Any) -> Any:
        if isinstance(value, SecretStr) and not value.get_secret_value().strip():
            raise ValueError(
                "an empty secret would turn this protection off; "
                "set a real value, or remove the key to leave it unset"
            )
        return value


class ServerConfig(Section):
    bind: str = "127.0.0.1"
    port: int = Field(default=9090, ge=1, le=65535)
    admin_token: SecretStr | None = None
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    long_poll_max_secs: float = Field(default=30.0, gt=0, le=300)
    max_log_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    # How agent CLIs on ssh_cli hosts reach us (AGENT_FLEET_URL); default http://bind:port.
    public_url: str | None = None
    # Host names we answer besides bind, public_url's host, localhost and IP addresses
    # (others get 421: DNS rebinding). "*.example.com" for subdomains, "*" for any.
    allowed_hosts: list[str] = Field(default_factory=list)
    # A connection must send its request headers within this (slowloris), its body within
    # body_timeout_secs; at most max_connections are open at once (capped under the fd limit).
    header_timeout_secs: float = Field(default=5.0, gt=0, le=300)
    body_timeout_secs: float = Field(default=30.0, gt=0, le=3600)
    max_connections: int = Field(default=1000, ge=8, le=1_000_000)
    # Free text that becomes an event (status messages, receipt summaries and errors)
    # and an agent's registration metadata (as JSON), in bytes.
    # (not below 16 KiB: `agent-fleet agent` cuts receipt text to that, so it always fits)
    max_event_text_bytes: int = Field(default=65_536, ge=16_384, le=500_000)
    max_metadata_bytes: int = Field(default=16_384, ge=256, le=1_048_576)


class ForgejoConfig(Section):
    url: str | None = None
    token: SecretStr | None = None
    webhook_secret: SecretStr | None = None
    allowed_repos: list[str] = Field(default_factory=list)
    max_review_rounds: int = Field(default=3, ge=0)
    # Which steps are reported as comments on the issue (any of these five).
    comment_on: list[CommentStep] = Field(default_factory=lambda: list(COMMENT_STEPS))
    reconcile_interval_secs: float = Field(default=300.0, gt=0)
    # Each API call's timeout (a slow Forgejo is retried like a failing one).
    api_timeout_secs: float = Field(default=10.0, gt=0, le=300)
    # Where [[hosts]] clone from and push to (<clone_url>/<owner>/<repo>.git); default `url`.
    clone_url: str | None = None
    # Who commits what an agent CLI on a host left uncommitted.
    commit_author_name: str = Field(default="agent-fleet", min_length=1, max_length=200)
    commit_author_email: str = Field(default="agent-fleet@localhost", min_length=1, max_length=200)
    # USD a repository may spend per UTC day before its new tasks are held: one number
    # for every repository, or a table by `owner/name` (`"*"`: every other repository).
    daily_budget_usd: dict[RepoKey, Usd] | None = None

    @field_validator("daily_budget_usd", mode="before")
    @classmethod
    def _one_budget_for_all(cls, value: Any) -> Any:
        """A bare number is the table `{"*" = number}`: one limit for every repository."""
        if isinstance(value, int | float) and not isinstance(value, bool):
            return {"*": value}
        return value


class OrchestratorConfig(Section):
    db_path: str = "data/agent-fleet.db"
    db_url: str | None = None
    heartbeat_interval_secs: int = Field(default=30, gt=0)
    heartbeat_timeout_threshold: int = Field(default=3, ge=1)
    task_timeout_secs: int = Field(default=3600, gt=0)
    default_max_retries: int = Field(default=3, ge=0, le=100)
    dispatch_interval_secs: int = Field(default=10, gt=0)
    http_pull_token: SecretStr | None = None
    # "original": the Rust original's agent rules (token on dequeue and status only).
    agent_auth: Literal["strict", "original"] = "strict"
    retry_backoff_base_secs: float = Field(default=10.0, ge=0)
    retry_backoff_max_secs: float = Field(default=600.0, ge=0)
    sweep_interval_secs: float = Field(default=1.0, gt=0)
    keep_failed_workspaces_days: int = Field(default=7, ge=0)
    # A completed task's workspace is kept this long, then collected (0: at once).
    keep_completed_workspaces_hours: float = Field(default=24.0, ge=0)
    ssh_poll_interval_secs: float = Field(default=2.0, gt=0)
    # A run with no new output (no new event, for JSON CLIs) this long is stopped and
    # fails `stalled`; [agent_types.X] idle_timeout_secs overrides it per type (0: never).
    idle_timeout_secs: float = Field(default=DEFAULT_IDLE_TIMEOUT_SECS, ge=0)
    # A task's spend across all its attempts; reaching either ends its retries.
    max_cost_usd_per_task: Usd | None = None
    max_tokens_per_task: int | None = Field(default=None, gt=0)


class HostAgentConfig(Section):
    agent_type: SafeId
    max_concurrency: int = Field(default=1, ge=1)
    capabilities: list[str] = Field(default_factory=list)


class HostConfig(Section):
    host_id: SafeId
    hostname: str = Field(min_length=1)
    ssh_user: str | None = None
    ssh_port: int = Field(default=22, ge=1, le=65535)
    ssh_key_path: str | None = None
    work_dir: str = Field(min_length=1)
    agents: list[HostAgentConfig] = Field(default_factory=list)
    # None: the user's ~/.ssh/known_hosts. Host keys are always verified.
    known_hosts: str | None = None
    connect_timeout_secs: float = Field(default=10.0, gt=0)
    # A deploy key on the host for cloning and pushing over SSH (git's alone, not the CLI's),
    # and the git server's known_hosts there. None: the host user's own SSH setup.
    git_ssh_key_path: str | None = None
    git_known_hosts: str | None = None


class AgentTypeConfig(Section):
    """How to run one agent type: a command template (needed unless the type is built
    in), and settings that also apply to the built-in ones."""

    command: list[str] | None = Field(default=None, min_length=1)
    idle_timeout_secs: float | None = Field(default=None, ge=0)
    # Codex only: its --sandbox mode.
    sandbox: SandboxMode | None = None


class Settings(Section):
    server: ServerConfig = Field(default_factory=ServerConfig)
    forgejo: ForgejoConfig = Field(default_factory=ForgejoConfig)
    orchestrator: OrchestratorConfig = Field(default_factory=OrchestratorConfig)
    hosts: list[HostConfig] = Field(default_factory=list)
    agent_types: dict[SafeId, AgentTypeConfig] = Field(default_factory=dict)
    # The original's custom CLI templates; each becomes an [agent_types] entry.
    adapters: dict[SafeId, OriginalAdapterConfig] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _adapters_as_agent_types(cls, data: Any) -> Any:
        return with_adapters_as_agent_types(data)

    @model_validator(mode="after")
    def _unique_hosts(self) -> "Settings":
        seen: set[str] = set()
        for host in self.hosts:
            if host.host_id in seen:
                raise ValueError(f"duplicate host_id {host.host_id!r}")
            seen.add(host.host_id)
        return self

    @model_validator(mode="after")
    def _known_agent_types(self) -> "Settings":
        """A host's agent_type must say how to run it: built in, or an [agent_types] entry."""
        for h, host in enumerate(self.hosts):
            for a, agent in enumerate(host.agents):
                if agent.agent_type not in BUILT_IN and agent.agent_type not in self.agent_types:
                    raise ValueError(
                        f"hosts[{h}].agents[{a}].agent_type: {agent.agent_type!r} is neither "
                        f"built in ({', '.join(sorted(BUILT_IN))}) nor an [agent_types] "
                        "or [adapters] entry"
                    )
        return self

    @model_validator(mode="after")
    def _custom_types_have_commands(self) -> "Settings":
        for name, agent_type in self.agent_types.items():
            if agent_type.command is None and name not in BUILT_IN:
                raise ValueError(
                    f"agent_types.{name}.command: needed, {name!r} is not built in "
                    f"({', '.join(sorted(BUILT_IN))})"
                )
        return self

    def agent_type(self, name: str) -> AgentTypeConfig:
        """The settings of one agent type (an empty entry when it has none)."""
        return self.agent_types.get(name) or AgentTypeConfig()

    def idle_timeout_secs(self, agent_type: str) -> float | None:
        """How long a run of this type may show no progress; None: for ever."""
        own = self.agent_type(agent_type).idle_timeout_secs
        limit = self.orchestrator.idle_timeout_secs if own is None else own
        return limit or None

    @property
    def store_url(self) -> str:
        return self.orchestrator.db_url or f"sqlite:///{self.orchestrator.db_path}"


@dataclass(frozen=True, slots=True)
class LoadedSettings:
    settings: Settings
    source: Path | None
    warnings: list[str] = field(default_factory=list)
    #: Keys of the original service that are knowingly ignored.
    notes: list[str] = field(default_factory=list)


def load_settings(path: Path | None, env: Mapping[str, str]) -> LoadedSettings:
    """Read `path` (None: embedded defaults), apply environment overrides, validate."""
    name = str(path) if path else "(defaults)"
    raw: dict[str, Any] = _read(path) if path else {}
    for var, (section, key) in ENV_OVERRIDES.items():
        if env.get(var):
            raw.setdefault(section, {})[key] = env[var]
    keys = check_keys(raw, Settings)
    if keys.errors:
        raise ConfigError("\n".join(f"{name}: {error}" for error in keys.errors))
    try:
        settings = Settings.model_validate(keys.cleaned)
    except ValidationError as e:
        raise ConfigError(_describe(name, e)) from None
    return LoadedSettings(
        settings=settings,
        source=path,
        warnings=[f"{name}: {w}" for w in short_secrets(settings)],
        notes=[f"{name}: {note}" for note in keys.notes]
        + [f"{name}: {note}" for note in adapter_notes(settings.adapters)],
    )


def short_secrets(settings: Settings) -> list[str]:
    """A warning for each configured secret shorter than MIN_TOKEN_CHARS."""
    return [
        f"{key} is only {len(value)} characters long; use at least {MIN_TOKEN_CHARS} "
        "(for example: openssl rand -hex 32)"
        for key, value in secrets_by_key(settings)
        if len(value) < MIN_TOKEN_CHARS
    ]


def secrets_by_key(model: BaseModel, prefix: str = "") -> list[tuple[str, str]]:
    """Every secret the settings hold, by dotted key."""
    found: list[tuple[str, str]] = []
    for key in type(model).model_fields:
        value = getattr(model, key)
        items = value if isinstance(value, list) else [value]
        for index, item in enumerate(items):
            where = f"{prefix}{key}[{index}]" if isinstance(value, list) else f"{prefix}{key}"
            if isinstance(item, SecretStr):
                found.append((where, item.get_secret_value()))
            elif isinstance(item, BaseModel):
                found += secrets_by_key(item, f"{where}.")
    return found


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None


def _describe(name: str, error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        key = ".".join(str(p) for p in item["loc"]) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        lines.append(f"{name}: {key}: {message}")
    return "\n".join(lines)
