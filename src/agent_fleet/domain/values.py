"""Value objects carried by tasks and events: receipts, artifacts, pull requests, sources."""

from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from agent_fleet.domain.ids import AgentId, Lease, TaskId
from agent_fleet.domain.states import FailureReason, LossCause, PrState, ReceiptStatus

#: A value of an artifact's field we do not know: kept as given, scalars only.
ExtraValue: TypeAlias = str | int | float | bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Artifact:
    """What an agent produced, as the original's receipts carry it ("PR URLs, file paths, etc."):
    `pr` (`url`), `commit` (`sha`, `branch`), `branch` (`name`, `sha`), `file` (`path`), or any
    other type, kept as given. Only `pr` artifacts drive validation and the PR lifecycle."""

    type: str
    url: str | None = None
    sha: str | None = None
    branch: str | None = None
    name: str | None = None
    path: str | None = None
    #: The artifact's other fields, as given (bounded where it is read: `artifacts.py`).
    extra: dict[str, ExtraValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Usage:
    """What an attempt consumed, as far as the CLI reported it (None: not reported).

    `tokens` is the total the CLI charged for (input + output, cache reads and writes not added
    twice); the split fields say where it went when the CLI tells."""

    tokens: int | None = None
    cost_usd: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Receipt:
    """The original's receipt: an agent's own account of one attempt."""

    task_id: TaskId
    agent_id: AgentId
    status: ReceiptStatus
    summary: str = ""
    lease: Lease | None = None
    duration_seconds: float | None = None
    artifacts: tuple[Artifact, ...] = ()
    error: str | None = None
    usage: Usage | None = None
    #: Why a failed run failed, when the runner knows better than "error" (`stalled`).
    reason: FailureReason | None = None

    def pr_urls(self) -> tuple[str, ...]:
        return tuple(a.url for a in self.artifacts if a.type == "pr" and a.url)

    def pushed(self, branch: str) -> Artifact | None:
        """The `branch` artifact for `branch` (what the fleet pushed), if any."""
        return next((a for a in self.artifacts if a.type == "branch" and a.name == branch), None)

    def files_changed(self) -> tuple[str, ...]:
        return tuple(a.path for a in self.artifacts if a.type == "file" and a.path)

    def shows_work(self) -> bool:
        """Whether it names work in a repository: a pull request, a branch or a commit."""
        return any(a.type in ("pr", "branch", "commit") for a in self.artifacts)


@dataclass(frozen=True, slots=True, kw_only=True)
class PullRequest:
    url: str
    number: int | None = None
    state: PrState = PrState.OPEN


@dataclass(frozen=True, slots=True, kw_only=True)
class Source:
    """Where a task came from: the API, or an issue in a forge."""

    kind: Literal["api", "forgejo"] = "api"
    repo: str | None = None
    issue_number: int | None = None
    url: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Failure:
    reason: FailureReason
    message: str = ""
    #: Set when the orchestrator itself ended the attempt: its retry is free.
    cause: LossCause | None = None
