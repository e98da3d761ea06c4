"""Request bodies as the original sends them, validated before anything reaches a service.

Everything that can be stored is bounded here: numbers have ranges (and no float is
infinite or NaN, which JSON cannot carry back out), free text has a length, and the
text that becomes an event is held to the configured caps (`api.limits.TextLimits`).
"""

import json
import math
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from agent_fleet.api.limits import TEXT_LIMITS
from agent_fleet.domain.ids import AgentId, Lease, TaskId
from agent_fleet.domain.states import ExecutionMode, FailureReason, ReceiptStatus
from agent_fleet.domain.values import Receipt
from agent_fleet.wire import ReceiptWire

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
#: Seconds: generous, but within what every store and JSON reader holds.
MAX_SECONDS = 10 * 365 * 24 * 3600


def _event_text(value: str) -> str:
    size, limit = len(value.encode("utf-8")), TEXT_LIMITS.get().event_text_bytes
    if size > limit:
        raise ValueError(
            f"is {size} bytes; the limit is {limit} bytes (server.max_event_text_bytes)"
        )
    return value


def _metadata(value: dict[str, Any]) -> dict[str, Any]:
    size = len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
    limit = TEXT_LIMITS.get().metadata_bytes
    if size > limit:
        raise ValueError(
            f"is {size} bytes as JSON; the limit is {limit} bytes (server.max_metadata_bytes)"
        )
    return value


#: Free text that is stored in an event: held to the configured cap.
EventText = Annotated[LongText, AfterValidator(_event_text)]
Metadata = Annotated[dict[str, Any], Field(max_length=64), AfterValidator(_metadata)]


def _unstorable(value: Any) -> str | None:
    """What JSON can smuggle in that no store can keep: lone UTF-16 surrogates, and
    numbers too big for a float (`1e999`, `Infinity`, `NaN` parse as inf/nan)."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "text must be valid Unicode (lone surrogate found)"
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return "numbers must be finite (no Infinity, NaN or 1e999)"
    if isinstance(value, dict):
        items = [x for kv in value.items() for x in kv]
        return next((p for p in map(_unstorable, items) if p), None)
    if isinstance(value, list):
        return next((p for p in map(_unstorable, value) if p), None)
    return None


class Body(BaseModel):
    """Every request body: unknown fields ignored (the original's agents send extras)."""

    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _reject_unstorable(cls, data: Any) -> Any:
        problem = _unstorable(data)
        if problem:
            raise ValueError(problem)
        return data


class AgentRef(Body):
    agent_id: Identifier


class RegisterBody(Body):
    agent_id: Identifier | None = None  # none: the server picks one
    agent_type: Identifier
    hostname: ShortText | None = None
    capabilities: list[Capability] = Field(default_factory=list, max_length=MAX_LIST)
    max_concurrency: int = Field(default=1, ge=1, le=1024)
    metadata: Metadata = Field(default_factory=dict)


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
    """`status` is the original's word for `state`; either may be sent (both must agree)."""

    lease: LeaseToken | None = None
    state: Literal["running", "failed"] | None = None
    status: Literal["running", "failed"] | None = None
    message: EventText | None = None
    progress: float | None = Field(default=None, ge=0, le=100)

    @model_validator(mode="after")
    def _one_state(self) -> "StatusBody":
        if self.state is None and self.status is None:
            raise ValueError("status (or state) is required: running or failed")
        if self.state is not None and self.status is not None and self.state != self.status:
            raise ValueError("status and state disagree")
        return self

    @property
    def reported(self) -> Literal["running", "failed"]:
        reported = self.state or self.status
        assert reported is not None  # _one_state saw to it
        return reported


class LogChunkBody(AgentRef):
    lease: LeaseToken | None = None
    offset: int = Field(ge=0, le=2**53)
    data: Annotated[str, StringConstraints(max_length=512 * 1024)]


class ReceiptBody(AgentRef, ReceiptWire):
    """A receipt as an agent posts it: the run's account (`wire.ReceiptWire`), who sends
    it, and its text held to the configured caps."""

    task_id: Identifier | None = None  # the path may name it instead
    lease: LeaseToken | None = None
    status: ReceiptStatus  # no default here: a posted receipt says how the run ended
    duration_seconds: float | None = Field(default=None, ge=0, le=MAX_SECONDS)
    summary: EventText = ""
    error: EventText | None = None
    # Why a failed run failed, when the runner knows (`stalled`: no progress for too long).
    reason: Literal["error", "stalled", "no_changes"] | None = None

    def to_receipt(self, task_id: str) -> Receipt:
        return Receipt(
            task_id=TaskId(task_id),
            agent_id=AgentId(self.agent_id),
            lease=Lease(self.lease) if self.lease else None,
            status=self.status,
            duration_seconds=self.duration_seconds,
            summary=self.summary,
            artifacts=tuple(a.to_artifact() for a in self.artifacts),
            error=self.error,
            usage=self.usage.to_usage() if self.usage else None,
            reason=FailureReason(self.reason) if self.reason else None,
        )


class PostedReceiptBody(ReceiptBody):
    """`POST /receipts`: the receipt names its task."""

    task_id: Identifier
