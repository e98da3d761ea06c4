"""Every error Agent Fleet raises on purpose, under one root.

FleetError
├── NotFound
│   ├── TaskNotFound(task_id)
│   └── AgentNotFound(agent_id)
├── Conflict                          -- allowed in general, not now
│   ├── InvalidTransition(task_id, state, action)
│   ├── StaleLease(task_id, attempt)
│   ├── ConcurrencyConflict(stream_id, version)
│   ├── AgentUnavailable(agent_id, status)
│   └── AgentIdTaken(agent_id, mode)     -- the id is another mode's agent (a [[hosts]] slot)
├── Forbidden
│   └── NotTaskHolder(task_id, agent_id)
├── Unauthorized
├── InvalidInput(field, reason)
│   └── UnknownAgentType(agent_type)     -- adapters/__init__.py
├── ConfigError                       -- the config file or the environment says something wrong
├── Unavailable                       -- something we depend on did not answer: try again later
│   ├── StoreError                       -- raised from the driver's error
│   │   └── DatabaseInUse(database, holder_pid)  -- store/sqlite_lock.py
│   ├── ForgeError(call, reason)         -- the forge answered an error, or not at all
│   └── HostUnreachable(host_id, reason) -- an ssh_cli host did not answer
├── LaunchFailed                      -- a host answered, but the run could not be started
└── PullRequestRefused(repo, reason)  -- the forge answered, and will not open that PR

Driver errors (sqlite3, psycopg, asyncssh, httpx) are translated into these at the
adapter that meets them (`raise … from e`); the API maps them to statuses in one table
(`api/errors.py`).
"""

from __future__ import annotations


class FleetError(Exception):
    """Root of every deliberate Agent Fleet error."""


class NotFound(FleetError):
    pass


class TaskNotFound(NotFound):
    def __init__(self, task_id: str) -> None:
        super().__init__(f"task {task_id!r} not found")
        self.task_id = task_id


class AgentNotFound(NotFound):
    def __init__(self, agent_id: str) -> None:
        super().__init__(f"agent {agent_id!r} not found (register first)")
        self.agent_id = agent_id


class Conflict(FleetError):
    pass


class InvalidTransition(Conflict):
    def __init__(self, task_id: str, state: str, action: str) -> None:
        super().__init__(f"cannot {action} task {task_id!r}: it is {state}")
        self.task_id = task_id
        self.state = state
        self.action = action


class StaleLease(Conflict):
    def __init__(self, task_id: str, attempt: int) -> None:
        super().__init__(f"stale lease for task {task_id!r}: attempt {attempt} holds it now")
        self.task_id = task_id
        self.attempt = attempt


class ConcurrencyConflict(Conflict):
    def __init__(self, stream_id: str, version: int) -> None:
        super().__init__(f"stream {stream_id!r} already has version {version}")
        self.stream_id = stream_id
        self.version = version


class AgentUnavailable(Conflict):
    def __init__(self, agent_id: str, status: str) -> None:
        super().__init__(f"agent {agent_id!r} is {status}")
        self.agent_id = agent_id
        self.status = status


class AgentIdTaken(Conflict):
    """Registering an id that belongs to an agent of another mode: a `[[hosts]]` slot is
    never taken over by an http_pull registration, nor the other way round."""

    def __init__(self, agent_id: str, mode: str) -> None:
        super().__init__(
            f"agent id {agent_id!r} belongs to an {mode} agent"
            + (" (a configured [[hosts]] slot)" if mode == "ssh_cli" else "")
            + ": register an http_pull agent under another id"
        )
        self.agent_id = agent_id
        self.mode = mode


class Forbidden(FleetError):
    pass


class NotTaskHolder(Forbidden):
    def __init__(self, task_id: str, agent_id: str) -> None:
        super().__init__(f"task {task_id!r} is not held by agent {agent_id!r}")
        self.task_id = task_id
        self.agent_id = agent_id


class Unauthorized(FleetError):
    pass


class InvalidInput(FleetError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class ConfigError(FleetError):
    pass


class Unavailable(FleetError):
    pass


class StoreError(Unavailable):
    pass


class ForgeError(Unavailable):
    def __init__(self, call: str, reason: str) -> None:
        super().__init__(f"forgejo {call}: {reason}")
        self.call = call
        self.reason = reason


class HostUnreachable(Unavailable):
    """An ssh_cli host did not answer (connection refused, timed out, auth failed)."""

    def __init__(self, host_id: str, reason: str) -> None:
        super().__init__(f"host {host_id} unreachable: {reason}")
        self.host_id = host_id
        self.reason = reason


class LaunchFailed(FleetError):
    """The host answered, but the run could not be set up or started (clone, missing CLI)."""


class PullRequestRefused(FleetError):
    """The forge will not open the task's pull request (no such repo or branch, nothing to
    merge): a fact about this attempt's delivery, not an outage to wait out."""

    def __init__(self, repo: str, reason: str) -> None:
        super().__init__(f"cannot open a pull request in {repo}: {reason}")
        self.repo = repo
        self.reason = reason
