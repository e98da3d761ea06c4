"""The closed vocabularies of the lifecycle: states, modes, reasons (the original's names)."""

from enum import StrEnum


class TaskState(StrEnum):
    CREATED = "created"
    ASSIGNED = "assigned"
    RUNNING = "running"
    REVIEW_PENDING = "review_pending"
    COMPLETED = "completed"
    FAILED = "failed"
    AGENT_LOST = "agent_lost"
    CANCELLED = "cancelled"


#: States in which an agent holds the task and work may be under way.
HELD_STATES = frozenset({TaskState.ASSIGNED, TaskState.RUNNING})
#: States from which a (manual or automatic) retry starts a new attempt.
RETRYABLE_STATES = frozenset({TaskState.FAILED, TaskState.AGENT_LOST})
#: States that never change again.
FINAL_STATES = frozenset({TaskState.COMPLETED, TaskState.CANCELLED})


class ExecutionMode(StrEnum):
    UNDECIDED = "undecided"
    SSH_CLI = "ssh_cli"
    HTTP_PULL = "http_pull"


class AgentMode(StrEnum):
    SSH_CLI = "ssh_cli"
    HTTP_PULL = "http_pull"


class AgentStatus(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"
    DEREGISTERED = "deregistered"


class FailureReason(StrEnum):
    ERROR = "error"
    PARTIAL = "partial"
    TIMEOUT = "timeout"
    RECEIPT_INVALID = "receipt_invalid"
    PR_CLOSED = "pr_closed"
    DISPATCH_ERROR = "dispatch_error"
    AGENT_LOST = "agent_lost"
    #: No new output for the agent type's `idle_timeout_secs`.
    STALLED = "stalled"
    #: A task from an issue whose run changed nothing in its repository.
    NO_CHANGES = "no_changes"
    #: The task's spend across attempts passed its budget: never retried on its own.
    BUDGET_EXCEEDED = "budget_exceeded"


#: Failure reasons an agent's receipt may name (anything else it says is `error`).
RECEIPT_REASONS = frozenset({FailureReason.ERROR, FailureReason.STALLED, FailureReason.NO_CHANGES})

#: Failures that are a person's (or a budget's) decision: never retried automatically.
NEVER_AUTO_RETRIED = frozenset({FailureReason.PR_CLOSED, FailureReason.BUDGET_EXCEEDED})


class LossCause(StrEnum):
    """Why an attempt was lost when the agent had no part in it."""

    #: The orchestrator crashed or restarted while it launched the attempt (claimed but
    #: never started, or its workspace half-prepared): the attempt does not count.
    ORCHESTRATOR_RESTART = "orchestrator_restart"


class ReceiptStatus(StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"
    PARTIAL = "partial"


class PrState(StrEnum):
    OPEN = "open"
    MERGED = "merged"
    CLOSED = "closed"
