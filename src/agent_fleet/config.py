"""Typed settings from `config.toml` (the original's sections and keys) and the environment.

Errors name the file, the dotted key and the reason. Keys we do not know are
reported as warnings, not errors: a user of the original may carry keys that
mean nothing here, and must still be able to start.
"""

import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from agent_fleet.adapters import BUILT_IN
from agent_fleet.domain.errors import FleetError
from agent_fleet.original_adapters import (
    OriginalAdapterConfig,
    adapter_notes,
    with_adapters_as_agent_types,
)

DEFAULT_CONFIG_PATH = Path("config.toml")
SafeId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]

#: Environment variables that win over the file (secrets and the store URL).
ENV_OVERRIDES: dict[str, tuple[str, str]] = {
    "AGENT_FLEET_ADMIN_TOKEN": ("server", "admin_token"),
    "AGENT_FLEET_HTTP_PULL_TOKEN": ("orchestrator", "http_pull_token"),
    "AGENT_FLEET_FORGEJO_TOKEN": ("forgejo", "token"),
    "AGENT_FLEET_WEBHOOK_SECRET": ("forgejo", "webhook_secret"),
    "AGENT_FLEET_DB_URL": ("orchestrator", "db_url"),
}


class ConfigError(FleetError):
    pass


CommentStep = Literal["picked_up", "pr_opened", "completed", "failed", "retried"]
COMMENT_STEPS: tuple[CommentStep, ...] = (
    "picked_up",
    "pr_opened",
    "completed",
    "failed",
    "retried",
)


class Section(BaseModel):
    # "ignore": unknown keys are collected as warnings before validation.
    model_config = ConfigDict(extra="ignore", frozen=True)


class ServerConfig(Section):
    bind: str = "127.0.0.1"
    port: int = Field(default=9090, ge=1, le=65535)
    admin_token: SecretStr | None = None
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    long_poll_max_secs: float = Field(default=30.0, gt=0, le=300)
    max_log_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    # How agent CLIs on ssh_cli hosts reach us (AGENT_FLEET_URL); default http://bind:port.
    public_url: str | None = None


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
    ssh_poll_interval_secs: float = Field(default=2.0, gt=0)


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


class AgentTypeConfig(Section):
    command: list[str] = Field(min_length=1)


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

    @property
    def store_url(self) -> str:
        return self.orchestrator.db_url or f"sqlite:///{self.orchestrator.db_path}"

    @property
    def heartbeat_timeout_secs(self) -> int:
        return (
            self.orchestrator.heartbeat_interval_secs
            * self.orchestrator.heartbeat_timeout_threshold
        )


@dataclass(frozen=True, slots=True)
class LoadedSettings:
    settings: Settings
    source: Path | None
    warnings: list[str] = field(default_factory=list)


def load_settings(path: Path | None, env: Mapping[str, str]) -> LoadedSettings:
    """Read `path` (None: embedded defaults), apply environment overrides, validate."""
    name = str(path) if path else "(defaults)"
    raw: dict[str, Any] = _read(path) if path else {}
    for var, (section, key) in ENV_OVERRIDES.items():
        if env.get(var):
            raw.setdefault(section, {})[key] = env[var]
    warnings = [f"{name}: {key}: unknown key, ignored" for key in unknown_keys(raw, Settings)]
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_describe(name, e)) from None
    warnings += [f"{name}: {note}" for note in adapter_notes(settings.adapters)]
    return LoadedSettings(settings=settings, source=path, warnings=warnings)


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
        lines.append(f"{name}: {key}: {item['msg']}")
    return "\n".join(lines)


def unknown_keys(raw: Any, model: type[BaseModel], prefix: str = "") -> list[str]:
    """Dotted keys in `raw` that `model` does not declare (recursing into sections)."""
    if not isinstance(raw, dict):
        return []
    found = []
    for key, value in raw.items():
        dotted = f"{prefix}{key}"
        info = model.model_fields.get(key)
        if info is None:
            found.append(dotted)
            continue
        sub = _section_model(info.annotation)
        if sub is None:
            continue
        if typing.get_origin(info.annotation) is dict and isinstance(value, dict):
            # A table of sections by name ([agent_types.<name>]): check each one.
            for name, item in value.items():
                found += unknown_keys(item, sub, f"{dotted}.{name}.")
            continue
        items = value if isinstance(value, list) else [value]
        for index, item in enumerate(items):
            where = f"{dotted}[{index}]." if isinstance(value, list) else f"{dotted}."
            found += unknown_keys(item, sub, where)
    return found


def _section_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def redacted(settings: Settings) -> dict[str, Any]:
    """The effective settings as plain data, every secret shown as `***`."""
    masked: dict[str, Any] = _mask(settings.model_dump(mode="python"))
    return masked


def _mask(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return "***"
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v) for v in value]
    if isinstance(value, str) and "://" in value and "@" in value:
        scheme, _, rest = value.partition("://")
        return f"{scheme}://***@{rest.split('@', 1)[1]}"  # a password inside a URL
    return value


def render_toml(data: dict[str, Any]) -> str:
    """Render the effective config as TOML-like text for `config check` (None as comments)."""
    lines: list[str] = []
    for section, body in data.items():
        if not body and section in ("hosts", "agent_types"):
            continue
        if isinstance(body, dict) and all(not isinstance(v, dict) for v in body.values()):
            lines += ["", f"[{section}]", *_pairs(body)]
        elif isinstance(body, dict):
            for name, sub in body.items():
                lines += ["", f"[{section}.{name}]", *_pairs(sub)]
        elif isinstance(body, list):
            for item in body:
                lines += ["", f"[[{section}]]", *_pairs(item)]
    return "\n".join(lines).strip() + "\n"


def _pairs(body: dict[str, Any]) -> list[str]:
    return [
        f"# {key} = (unset)" if value is None else f"{key} = {_value(value)}"
        for key, value in body.items()
    ]


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_value(v)}" for k, v in value.items()) + "}"
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
