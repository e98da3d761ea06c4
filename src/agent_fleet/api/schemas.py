"""Request bodies as the original sends them, validated before anything reaches a service."""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from agent_fleet.domain.ids import AgentId, Lease, TaskId
from agent_fleet.domain.states import ExecutionMode, ReceiptStatus
from agent_fleet.domain.values import Artifact, Receipt, Usage

MAX_LIST = 256
HttpUrlText = Annotated[str, StringConstraints(max_length=2_000, pattern=r"^https?://\S+$")]
Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@/-]*$")
]
Capability = Annotated[
    str, StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:+/-]*$")
]
LeaseToken = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_-]+$")
]
Repo = Annotated[
    str, StringConstraints(max_length=200, pattern=r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
]
ShortText = Annotated[str, StringConstraints(max_length=1_000)]
LongText = Annotated[str, StringConstraints(max_length=500_000)]
PRIORITY_NAMES = {"high": 10, "normal": 0, "low": -10}


def _has_lone_surrogate(value: Any) -> bool:
    """JSON can smuggle lone UTF-16 surrogates that no store can encode."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


class Body(BaseModel):
    """Every request body: unknown fields ignored (the original's agents send extras)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _reject_surrogates(cls, data: Any) -> Any:
        if _has_lone_surrogate(data):
            raise ValueError("text must be valid Unicode (lone surrogate found)")
        return data


class RegisterBody(Body):
    agent_id: Identifier | None = None
    agent_type: Identifier
    hostname: ShortText | None = None
    capabilities: list[Capability] = Field(default_factory=list, max_length=MAX_LIST)
    max_concurrency: int = Field(default=1, ge=1, le=1024)
    metadata: dict[str, Any] = Field(default_factory=dict, max_length=64)


class AgentRef(Body):
    agent_id: Identifier


class HeartbeatBody(AgentRef):
    running_tasks: list[Identifier] | None = Field(default=None, max_length=4096)


class CreateTaskBody(Body):
    title: Annotated[str, StringConstraints(min_length=1, max_length=500)]
    prompt: Annotated[str, StringConstraints(min_length=1, max_length=500_000)]
    required_capabilities: list[Capability] = Field(default_factory=list, max_length=MAX_LIST)
    execution_mode: ExecutionMode = ExecutionMode.UNDECIDED
    max_retries: int | None = Field(default=None, ge=0, le=100)
    timeout_secs: int | None = Field(default=None, ge=1, le=7 * 24 * 3600)
    priority: int | Literal["high", "normal", "low"] = 0
    repo: Repo | None = None

    def priority_value(self) -> int:
        if isinstance(self.priority, str):
            return PRIORITY_NAMES[self.priority]
        return self.priority

    @model_validator(mode="after")
    def _priority_range(self) -> "CreateTaskBody":
        if isinstance(self.priority, int) and not -1000 <= self.priority <= 1000:
            raise ValueError("priority must be between -1000 and 1000")
        return self


class DequeueBody(AgentRef):
    capabilities: list[Capability] | None = Field(default=None, max_length=MAX_LIST)
    wait_secs: float = Field(default=0, ge=0, le=300)


class AssignBody(AgentRef):
    pass


class StatusBody(AgentRef):
    lease: LeaseToken | None = None
    state: Literal["running", "failed"]
    message: LongText | None = None
    progress: float | None = Field(default=None, ge=0, le=100)


class LogChunkBody(AgentRef):
    lease: LeaseToken | None = None
    offset: int = Field(ge=0, le=2**53)
    data: Annotated[str, StringConstraints(max_length=512 * 1024)]


class ArtifactBody(Body):
    type: Literal["pr", "commit"]
    # http(s) only: the URL is shown as a link (a `javascript:` one would run script).
    url: Annotated[str, StringConstraints(max_length=2_000, pattern=r"^https?://\S+$")] | None = (
        None
    )
    sha: Annotated[str, StringConstraints(max_length=64, pattern=r"^[0-9a-fA-F]+$")] | None = None
    branch: ShortText | None = None

    @model_validator(mode="after")
    def _complete(self) -> "ArtifactBody":
        if self.type == "pr" and not self.url:
            raise ValueError("a pr artifact needs a url")
        if self.type == "commit" and not self.sha:
            raise ValueError("a commit artifact needs a sha")
        return self


class UsageBody(Body):
    tokens: int | None = Field(default=None, ge=0)
    cost_usd: float | None = Field(default=None, ge=0)
    # Where the tokens went, when the CLI tells (shown per attempt; spend counts `tokens`,
    # else input + output).
    input_tokens: int | None = Field(default=None, ge=0)
    output_tokens: int | None = Field(default=None, ge=0)
    cache_read_tokens: int | None = Field(default=None, ge=0)
    cache_write_tokens: int | None = Field(default=None, ge=0)

    def to_usage(self) -> Usage:
        return Usage(**self.model_dump())


class ReceiptBody(Body):
    task_id: Identifier | None = None
    agent_id: Identifier
    lease: LeaseToken | None = None
    status: ReceiptStatus
    duration_seconds: float | None = Field(default=None, ge=0)
    summary: LongText = ""
    artifacts: list[ArtifactBody] = Field(default_factory=list, max_length=100)
    error: LongText | None = None
    usage: UsageBody | None = None

    def to_receipt(self, task_id: str) -> Receipt:
        return Receipt(
            task_id=TaskId(task_id),
            agent_id=AgentId(self.agent_id),
            lease=Lease(self.lease) if self.lease else None,
            status=self.status,
            duration_seconds=self.duration_seconds,
            summary=self.summary,
            artifacts=tuple(
                Artifact(type=a.type, url=a.url, sha=a.sha, branch=a.branch) for a in self.artifacts
            ),
            error=self.error,
            usage=self.usage.to_usage() if self.usage else None,
        )
