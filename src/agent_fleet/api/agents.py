"""Agent endpoints: register, heartbeat, deregister, list."""

from typing import Annotated

from fastapi import APIRouter, Query, Request

from agent_fleet.api.auth import require_agent, require_registration
from agent_fleet.api.deps import AuthDep, FleetDep
from agent_fleet.api.replies import (
    ERRORS,
    AgentList,
    DeregisteredOut,
    HeartbeatReply,
    RegistrationOut,
    agent_out,
)
from agent_fleet.api.schemas import AgentRef, Capability, HeartbeatBody, RegisterBody
from agent_fleet.domain.states import AgentMode, AgentStatus
from agent_fleet.ports.queries import AgentQuery
from agent_fleet.services.agents import RegisterAgent

router = APIRouter(prefix="/api/v1/agents", tags=["agents"], responses=ERRORS)


@router.post("/register")
async def register(
    body: RegisterBody, request: Request, fleet: FleetDep, auth: AuthDep
) -> RegistrationOut:
    await require_registration(request, fleet, auth, body.agent_id)
    registered = await fleet.agents.register(
        RegisterAgent(
            agent_id=body.agent_id,
            agent_type=body.agent_type,
            hostname=body.hostname,
            capabilities=tuple(body.capabilities),
            max_concurrency=body.max_concurrency,
            metadata=body.metadata,
        )
    )
    options = fleet.ctx.options
    return RegistrationOut(
        agent_id=registered.agent.agent_id,
        registry_token=registered.registry_token,
        status=registered.agent.status.value,
        heartbeat_interval_secs=int(options.heartbeat_interval.total_seconds()),
        heartbeat_timeout_secs=int(options.heartbeat_timeout.total_seconds()),
    )


@router.post("/heartbeat")
async def heartbeat(
    body: HeartbeatBody, request: Request, fleet: FleetDep, auth: AuthDep
) -> HeartbeatReply:
    await require_agent(request, fleet, auth, body.agent_id, "heartbeat")
    reply = await fleet.agents.heartbeat(body.agent_id, body.running_tasks)
    return HeartbeatReply(status=reply.agent.status.value, cancel_tasks=reply.cancel_tasks)


@router.post("/deregister")
async def deregister(
    body: AgentRef, request: Request, fleet: FleetDep, auth: AuthDep
) -> DeregisteredOut:
    await require_agent(request, fleet, auth, body.agent_id, "deregister")
    agent = await fleet.agents.deregister(body.agent_id)
    return DeregisteredOut(agent_id=agent.agent_id, status=agent.status.value)


@router.get("")
async def list_agents(
    fleet: FleetDep,
    status: AgentStatus | None = None,
    capability: Annotated[Capability | None, Query()] = None,
    mode: AgentMode | None = None,
) -> AgentList:
    agents = await fleet.agents.find(AgentQuery(status=status, capability=capability, mode=mode))
    running = await fleet.ctx.store.running_counts()
    out = []
    for agent in agents:
        last = await fleet.ctx.store.last_heartbeat(agent.agent_id)
        out.append(agent_out(agent, running.get(agent.agent_id, 0), last))
    return AgentList(agents=out)
