"""Agent endpoints: register, heartbeat, deregister, list."""

from typing import Annotated

from fastapi import APIRouter, Query, Request, Security

from agent_fleet.api.auth import AuthDep, Caller, acting_as, may_register, require_agent
from agent_fleet.api.deps import FleetDep
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


@router.post("/register", dependencies=[Security(may_register)])
async def register(body: RegisterBody, fleet: FleetDep) -> RegistrationOut:
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
    return RegistrationOut(
        agent_id=registered.agent.agent_id,
        registry_token=registered.registry_token,
        status=registered.agent.status.value,
        heartbeat_interval_secs=int(registered.heartbeat_interval.total_seconds()),
        heartbeat_timeout_secs=int(registered.heartbeat_timeout.total_seconds()),
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
    body: AgentRef,
    caller: Annotated[Caller, Security(acting_as("deregister", AgentRef))],
    fleet: FleetDep,
) -> DeregisteredOut:
    agent = await fleet.agents.deregister(caller.known())
    return DeregisteredOut(agent_id=agent.agent_id, status=agent.status.value)


@router.get("")
async def list_agents(
    fleet: FleetDep,
    status: AgentStatus | None = None,
    capability: Annotated[Capability | None, Query()] = None,
    mode: AgentMode | None = None,
) -> AgentList:
    query = AgentQuery(status=status, capability=capability, mode=mode)
    return AgentList(agents=[agent_out(a) for a in await fleet.overview.agents(query)])
