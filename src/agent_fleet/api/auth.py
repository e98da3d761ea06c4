"""Bearer tokens: the shared pull token, each agent's registry token, the admin token.

Agent calls follow one of two rule sets, `[orchestrator] agent_auth`:

- `strict` (the default): acting as an agent takes the shared `http_pull_token` or that
  agent's own registry token. With no shared token (open mode) a new agent id needs
  nothing, but an id that is registered still needs its own token, on every call.
- `original`: the Rust original's rules, for agents written for it. The shared token
  (when set) guards dequeue and status (and our log upload) only; register,
  re-register, heartbeat, complete, receipts and deregister are open, and the agent is
  whoever the body names.

In both, a `[[hosts]]` slot (an ssh_cli agent) is acted for only by its run, on its task,
with the lease the run was given (not even the shared token: no pull agent needs to);
registering its id is refused (409).

Each rule is a FastAPI `Security` dependency: `Admin` on operator routes, `may_register`
on registration, `acting_as(call, Body)` on agent routes; the last hands the route the
agent it loaded, so the service does not load it again.
"""

import hmac
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Literal

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from agent_fleet.api.deps import FleetDep
from agent_fleet.api.schemas import AgentRef, RegisterBody
from agent_fleet.domain.agent import Agent
from agent_fleet.domain.errors import AgentNotFound, Unauthorized
from agent_fleet.domain.states import AgentMode
from agent_fleet.services.agents import token_matches
from agent_fleet.services.fleet import Fleet


class AgentAuth(StrEnum):
    STRICT = "strict"
    ORIGINAL = "original"


#: What an agent call does; the original checked the shared token on some of them only.
AgentCall = Literal["heartbeat", "deregister", "dequeue", "status", "logs", "complete"]
_GUARDED_BY_THE_ORIGINAL: frozenset[AgentCall] = frozenset({"dequeue", "status", "logs"})
#: Appended to every refusal the original would not have made, so an operator finds the switch.
ORIGINAL_HINT = (
    " (agents written for the original Agent Fleet send no token here: set [orchestrator]"
    ' agent_auth = "original" to accept them)'
)


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthConfig:
    admin_token: str | None = None
    http_pull_token: str | None = None
    agent_auth: AgentAuth = AgentAuth.STRICT

    def is_shared(self, token: str | None) -> bool:
        return (
            token is not None
            and self.http_pull_token is not None
            and _equal(token, self.http_pull_token)
        )

    def original_lets_through(self, call: AgentCall) -> bool:
        """Would the original have let this call through with no token at all?"""
        return self.http_pull_token is None or call not in _GUARDED_BY_THE_ORIGINAL


async def get_auth(request: Request) -> AuthConfig:
    auth: AuthConfig = request.app.state.auth
    return auth


AuthDep = Annotated[AuthConfig, Depends(get_auth)]
_bearer = HTTPBearer(auto_error=False, description="an admin, shared pull or registry token")


async def bearer_token(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> str | None:
    token = credentials.credentials.strip() if credentials is not None else ""
    return token or None


Token = Annotated[str | None, Security(bearer_token)]


def _equal(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


# --- operators ------------------------------------------------------------------------


async def require_admin(token: Token, auth: AuthDep) -> None:
    if auth.admin_token is None:
        return
    if token is None:
        raise Unauthorized("missing bearer token (operator actions need the admin token)")
    if not _equal(token, auth.admin_token):
        raise Unauthorized("invalid admin token")


#: `dependencies=[Admin]` on a route: operator actions take the admin token (when set).
Admin = Security(require_admin)


# --- agents ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Caller:
    """Who an agent request acts for: the id its body names, and that agent when known
    (unknown is allowed only where open mode lets a new id through)."""

    agent_id: str
    agent: Agent | None

    def known(self) -> Agent:
        if self.agent is None:
            raise AgentNotFound(self.agent_id)
        return self.agent


def acting_as(call: AgentCall, body: type[AgentRef] = AgentRef) -> Callable[..., Awaitable[Caller]]:
    """The `Security` dependency of an agent route whose body is a `body`: may this request
    act as the agent the body names (on the task its path names, or its receipt's)?"""

    async def check(
        body: AgentRef, request: Request, token: Token, fleet: FleetDep, auth: AuthDep
    ) -> Caller:
        task_id = request.path_params.get("task_id")
        if task_id is None and call == "complete":
            task_id = getattr(body, "task_id", None)
        agent = await fleet.agents.lookup(body.agent_id)
        await _may_act(fleet, auth, body.agent_id, agent, token, call, task_id)
        return Caller(body.agent_id, agent)

    # The dependency declares the route's own body (by the route's parameter name, `body`):
    # FastAPI parses the request once for both, and a malformed body is refused (422)
    # before any token is looked at, whoever sends it.
    signature = inspect.signature(check)
    check.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[
            p.replace(annotation=body) if p.name == "body" else p
            for p in signature.parameters.values()
        ]
    )
    return check


async def require_agent(
    request: Request,
    fleet: Fleet,
    auth: AuthConfig,
    agent_id: str,
    call: AgentCall,
    task_id: str | None = None,
) -> None:
    """The same check called from a route's body (the heartbeat route)."""
    credentials = await _bearer(request)
    token = await bearer_token(credentials)
    agent = await fleet.agents.lookup(agent_id)
    await _may_act(fleet, auth, agent_id, agent, token, call, task_id)


async def _may_act(
    fleet: Fleet,
    auth: AuthConfig,
    agent_id: str,
    agent: Agent | None,
    token: str | None,
    call: AgentCall,
    task_id: str | None,
) -> None:
    """A token that is presented must be right: one agent's token never acts for another."""
    if agent is not None and agent.mode is AgentMode.SSH_CLI:
        await _require_slot_run(fleet, agent, token, task_id)
        return
    if auth.is_shared(token):
        return
    if auth.agent_auth is AgentAuth.ORIGINAL and auth.original_lets_through(call):
        return
    if agent is not None and token is not None and token_matches(agent, token):
        return
    if agent is None and auth.http_pull_token is None:
        return  # open mode and no such agent yet: the service will answer 404
    hint = ORIGINAL_HINT if auth.original_lets_through(call) else ""
    if token is None and agent is not None and auth.http_pull_token is None:
        raise Unauthorized(
            f"agent {agent_id!r} is registered: acting for it takes its registry token{hint}"
        )
    if token is None:
        raise Unauthorized(f"missing bearer token{hint}")
    raise Unauthorized(f"token is not valid for agent {agent_id!r}{hint}")


async def _require_slot_run(
    fleet: Fleet, agent: Agent, token: str | None, task_id: str | None
) -> None:
    """A `[[hosts]]` slot has no registry token: its run holds the lease of its attempt
    (AGENT_FLEET_TOKEN), good for that one task, that one attempt."""
    if token is not None and task_id is not None:
        task = await fleet.tasks.lookup(task_id)
        if (
            task is not None
            and task.lease is not None
            and task.agent_id == agent.agent_id
            and _equal(token, task.lease)
        ):
            return
    raise Unauthorized(
        f"agent {agent.agent_id!r} is a [[hosts]] slot: only its run, with the lease it "
        "was given (AGENT_FLEET_TOKEN), acts for it"
    )


async def may_register(body: RegisterBody, token: Token, fleet: FleetDep, auth: AuthDep) -> None:
    """Registering a new id takes the shared token (none in open mode); re-registering an
    id takes the shared token or that id's current registry token, even in open mode."""
    if auth.is_shared(token) or auth.agent_auth is AgentAuth.ORIGINAL:
        return
    agent_id = body.agent_id
    existing = await fleet.agents.lookup(agent_id) if agent_id else None
    if existing is not None and existing.mode is not AgentMode.HTTP_PULL:
        return  # not an id HTTP can register: the service refuses it (409)
    if existing is not None:
        if token is not None and token_matches(existing, token):
            return
        shared = " or the shared http_pull_token" if auth.http_pull_token else ""
        raise Unauthorized(
            f"agent {agent_id!r} is registered: registering it again takes its current "
            f"registry token{shared}{ORIGINAL_HINT}"
        )
    if auth.http_pull_token is None:
        return  # open mode: a new id needs nothing
    if token is None:
        raise Unauthorized(f"registering takes the shared http_pull_token{ORIGINAL_HINT}")
    raise Unauthorized(f"invalid token for registering{ORIGINAL_HINT}")
