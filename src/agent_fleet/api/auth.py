"""Bearer tokens: the shared pull token, each agent's registry token, the admin token."""

import hmac
from dataclasses import dataclass

from fastapi import Request

from agent_fleet.domain.errors import Forbidden, Unauthorized
from agent_fleet.domain.ids import AgentId, TaskId
from agent_fleet.domain.states import AgentMode
from agent_fleet.services.agents import token_matches
from agent_fleet.services.fleet import Fleet


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthConfig:
    admin_token: str | None = None
    http_pull_token: str | None = None


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _equal(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


async def require_agent(request: Request, fleet: Fleet, auth: AuthConfig, agent_id: str) -> None:
    """An agent endpoint: the shared pull token, or this agent's own registry token.

    With no pull token configured the API is open to agents, but a token that
    is presented must still be right: an agent's token never acts for another.
    """
    token = bearer(request)
    if token is None:
        if auth.http_pull_token is not None:
            raise Unauthorized("missing bearer token")
        return
    if auth.http_pull_token is not None and _equal(token, auth.http_pull_token):
        return
    agent = await fleet.ctx.store.get_agent(AgentId(agent_id))
    if agent is not None and token_matches(agent, token):
        return
    if agent is None and auth.http_pull_token is None:
        return  # open mode and no such agent yet: the service will answer 404
    raise Unauthorized(f"token is not valid for agent {agent_id!r}")


async def require_agent_or_lease(
    request: Request, fleet: Fleet, auth: AuthConfig, agent_id: str, task_id: str
) -> None:
    """As `require_agent`, or, for an ssh_cli run that has no registry token, the lease
    of the attempt it holds (AGENT_FLEET_TOKEN): good for that one task, that one attempt."""
    token = bearer(request)
    if token is not None:
        task = await fleet.ctx.store.get_task(TaskId(task_id))
        if (
            task is not None
            and task.lease is not None
            and task.agent_id == agent_id
            and _equal(token, task.lease)
        ):
            agent = await fleet.ctx.store.get_agent(AgentId(agent_id))
            if agent is not None and agent.mode is AgentMode.SSH_CLI:
                return
    await require_agent(request, fleet, auth, agent_id)


async def require_registration(
    request: Request, fleet: Fleet, auth: AuthConfig, agent_id: str | None
) -> None:
    """Registering takes the pull token; re-registering an id also takes that id's own token."""
    token = bearer(request)
    if auth.http_pull_token is None:
        if token is not None and agent_id is not None:
            agent = await fleet.ctx.store.get_agent(AgentId(agent_id))
            if agent is not None and not token_matches(agent, token):
                raise Forbidden(f"token is not valid for agent {agent_id!r}")
        return
    if token is None:
        raise Unauthorized("missing bearer token")
    if _equal(token, auth.http_pull_token):
        return
    agent = await fleet.ctx.store.get_agent(AgentId(agent_id)) if agent_id else None
    if agent is None or not token_matches(agent, token):
        raise Unauthorized("invalid token")


def require_admin(request: Request, auth: AuthConfig) -> None:
    if auth.admin_token is None:
        return
    token = bearer(request)
    if token is None:
        raise Unauthorized("missing bearer token (operator actions need the admin token)")
    if not _equal(token, auth.admin_token):
        raise Unauthorized("invalid admin token")
