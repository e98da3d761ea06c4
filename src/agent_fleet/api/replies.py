"""Reply shapes (DESIGN §4): domain objects rendered as the original's JSON.

Over 300 lines: one response model per reply of the API (the OpenAPI document is made
from them), with the original's field names beside ours; each is a flat list of fields.
"""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from agent_fleet.codec import event_json
from agent_fleet.domain.budget import Hold, Spend
from agent_fleet.domain.states import ExecutionMode
from agent_fleet.domain.task import Task
from agent_fleet.domain.values import ExtraValue, Receipt
from agent_fleet.ports.queries import RecordedEvent
from agent_fleet.services.overview import AgentLoad


class Out(BaseModel):
    """A reply read off a domain object by attribute (`Out.model_validate(obj)`)."""

    model_config = ConfigDict(from_attributes=True)


# --- Task -------------------------------------------------------------------------


class SourceOut(Out):
    kind: str
    repo: str | None
    issue_number: int | None
    url: str | None


class ArtifactOut(Out):
    type: str
    url: str | None = None
    sha: str | None = None
    branch: str | None = None
    name: str | None = None
    path: str | None = None
    extra: dict[str, ExtraValue] = {}  # the artifact's other fields, as given (bounded)


class UsageOut(Out):
    tokens: int | None
    cost_usd: float | None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None


class ReceiptOut(Out):
    task_id: str
    agent_id: str
    status: str
    duration_seconds: float | None
    summary: str
    artifacts: list[ArtifactOut]
    error: str | None
    usage: UsageOut | None


class FailureOut(Out):
    reason: str
    message: str


class PullRequestOut(Out):
    url: str
    number: int | None
    state: str


# --- spend and budgets (docs/operations.md) -------------------------------------------


class SpendOut(Out):
    tokens: int
    cost_usd: float


class HoldOut(Out):
    reason: str
    until: datetime


def spend_out(spend: Spend) -> SpendOut:
    return SpendOut.model_validate(spend)


def hold_out(hold: Hold | None) -> HoldOut | None:
    return HoldOut.model_validate(hold) if hold else None


class TaskOut(BaseModel):
    """One shape, the original's field names beside ours: each pair is the same value
    (`status`/`state`, `assigned_agent_id`/`agent_id`, `assigned_host`/`host_id`,
    `review_count`/`review_rounds`, `last_activity_at`/`updated_at`)."""

    task_id: str
    title: str
    prompt: str
    status: str
    state: str
    required_capabilities: list[str]
    execution_mode: str
    priority: int
    assigned_agent_id: str | None
    agent_id: str | None
    assigned_host: str | None
    host_id: str | None
    attempt: int
    #: Attempts that did not count against max_retries (lost to the orchestrator's restart).
    free_attempts: int
    max_retries: int
    timeout_secs: int
    branch_name: str
    pr_title: str
    created_at: datetime
    updated_at: datetime
    last_activity_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    retry_at: datetime | None
    source: SourceOut
    receipt: ReceiptOut | None
    failure: FailureOut | None
    pr: PullRequestOut | None
    progress: float | None
    progress_message: str | None
    review_count: int
    review_rounds: int

    # --- spend and budgets (docs/operations.md) ---------------------------------------
    #: Summed over every attempt's receipt.
    spend: SpendOut
    #: Set while the task waits for its repository's next budget day (or a retry).
    hold: HoldOut | None = None


def receipt_out(receipt: Receipt) -> ReceiptOut:
    """The receipt without its lease: the lease is the holder's secret (no field takes it)."""
    return ReceiptOut.model_validate(receipt)


def task_out(task: Task) -> TaskOut:
    return TaskOut(**_task_fields(task))


def handout_out(task: Task, lease: str) -> "HandoutOut":
    """A dequeue's reply: the task object itself at the top level (the original's
    shape), with the attempt's lease as one more field."""
    return HandoutOut(**_task_fields(task), lease=lease)


def _task_fields(task: Task) -> dict[str, Any]:
    return {
        "task_id": task.task_id,
        "title": task.title,
        "prompt": task.prompt,
        "status": task.state.value,
        "state": task.state.value,
        "required_capabilities": list(task.required_capabilities),
        "execution_mode": _execution_mode(task),
        "priority": task.priority,
        "assigned_agent_id": task.agent_id,
        "agent_id": task.agent_id,
        "assigned_host": task.host_id,
        "host_id": task.host_id,
        "attempt": task.attempt,
        "free_attempts": task.free_attempts,
        "max_retries": task.max_retries,
        "timeout_secs": task.timeout_secs,
        "branch_name": task.branch_name,
        "pr_title": task.pr_title,
        "created_at": task.created_at,
        "updated_at": task.updated_at,
        "last_activity_at": task.updated_at,
        "started_at": task.started_at,
        "finished_at": task.finished_at,
        "retry_at": task.retry_at,
        "source": SourceOut.model_validate(task.source),
        "receipt": receipt_out(task.receipt) if task.receipt else None,
        "failure": FailureOut.model_validate(task.failure) if task.failure else None,
        "pr": PullRequestOut.model_validate(task.pr) if task.pr else None,
        "progress": task.progress,
        "progress_message": task.progress_message,
        "review_count": task.review_rounds,
        "review_rounds": task.review_rounds,
        # --- spend and budgets ---
        "spend": spend_out(task.spend),
        "hold": hold_out(task.hold),
    }


def _execution_mode(task: Task) -> str:
    """An undecided task shows how it runs once an agent holds it, as the original resolves
    it when it is handed out (commit 48c93e2ce9): on a `[[hosts]]` slot ssh_cli, else
    http_pull. Back to `created` (a retry), it is undecided again."""
    if task.execution_mode is ExecutionMode.UNDECIDED and task.agent_id is not None:
        return (ExecutionMode.SSH_CLI if task.host_id else ExecutionMode.HTTP_PULL).value
    return task.execution_mode.value


class TaskList(BaseModel):
    tasks: list[TaskOut]
    next_cursor: str | None


class HandoutOut(TaskOut):
    lease: str


class LogAck(BaseModel):
    ack_offset: int


class StatusReply(BaseModel):
    task: TaskOut
    cancel: bool


# --- Agent ------------------------------------------------------------------------


class AgentOut(BaseModel):
    agent_id: str
    agent_type: str
    mode: str
    hostname: str | None
    capabilities: list[str]
    max_concurrency: int
    running_tasks: int
    status: str
    last_heartbeat_at: datetime | None
    registered_at: datetime
    host_id: str | None
    metadata: dict[str, Any]


def agent_out(load: AgentLoad) -> AgentOut:
    agent, running, last_heartbeat = load.agent, load.running, load.last_heartbeat
    return AgentOut(
        agent_id=agent.agent_id,
        agent_type=agent.agent_type,
        mode=agent.mode.value,
        hostname=agent.hostname,
        capabilities=list(agent.capabilities),
        max_concurrency=agent.max_concurrency,
        running_tasks=running,
        status=agent.status.value,
        last_heartbeat_at=last_heartbeat,
        registered_at=agent.registered_at,
        host_id=agent.host_id,
        metadata=agent.metadata,
    )


class AgentList(BaseModel):
    agents: list[AgentOut]


class RegistrationOut(BaseModel):
    agent_id: str
    registry_token: str
    status: str
    heartbeat_interval_secs: int
    heartbeat_timeout_secs: int


class HeartbeatReply(BaseModel):
    status: str
    cancel_tasks: list[str]


class DeregisteredOut(BaseModel):
    agent_id: str
    status: str


# --- Events and health --------------------------------------------------------------


class EventOut(BaseModel):
    seq: int
    stream: str
    version: int
    type: str
    data: dict[str, Any]
    actor: str
    at: datetime


def event_out(recorded: RecordedEvent) -> EventOut:
    event = recorded.event
    type_, data = event_json(event)
    return EventOut(
        seq=recorded.seq,
        stream=event.stream_id,
        version=event.version,
        type=type_,
        data=_without_leases(data),
        actor=event.actor,
        at=event.at,
    )


def _without_leases(data: dict[str, Any]) -> dict[str, Any]:
    """Leases fence attempts; showing them would let a reader impersonate the holder."""
    out = {k: v for k, v in data.items() if k != "lease"}
    if isinstance(out.get("receipt"), dict):
        out["receipt"] = {k: v for k, v in out["receipt"].items() if k != "lease"}
    return out


class EventList(BaseModel):
    events: list[EventOut]
    #: Where the next page starts (`?cursor=`); None on the last page.
    next_cursor: str | None = None


class Health(BaseModel):
    status: str
    version: str
    store: str


class ErrorOut(BaseModel):
    error: str
    code: str


#: The refusals every API route may answer, documented once for all routers.
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 401, 403, 404, 409, 413, 422)
}
#: The same, for routes whose success is not JSON (their errors still are).
JSON_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {
        "description": "refused",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}},
    }
    for code in ERRORS
}
