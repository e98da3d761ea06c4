"""The agent aggregate: registration, liveness transitions and deregistration."""

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, assert_never

from agent_fleet.domain.errors import AgentUnavailable
from agent_fleet.domain.events import (
    AgentDeregistered,
    AgentEvent,
    AgentOffline,
    AgentOnline,
    AgentRegistered,
    Envelope,
)
from agent_fleet.domain.ids import AgentId
from agent_fleet.domain.states import AgentMode, AgentStatus


@dataclass(frozen=True, slots=True, kw_only=True)
class Agent:
    agent_id: AgentId
    version: int
    agent_type: str
    mode: AgentMode
    hostname: str | None
    capabilities: tuple[str, ...]
    max_concurrency: int
    status: AgentStatus
    registered_at: datetime
    updated_at: datetime
    metadata: dict[str, Any] = field(default_factory=dict)
    token_sha256: str | None = None
    host_id: str | None = None

    @property
    def next_version(self) -> int:
        return self.version + 1

    def envelope(self, now: datetime, actor: str) -> Envelope:
        """The envelope of the agent's next event."""
        return Envelope(stream_id=self.agent_id, version=self.next_version, at=now, actor=actor)


@dataclass(frozen=True, slots=True, kw_only=True)
class Registration:
    agent_id: AgentId
    agent_type: str
    mode: AgentMode
    hostname: str | None
    capabilities: tuple[str, ...]
    max_concurrency: int
    metadata: dict[str, Any] = field(default_factory=dict)
    token_sha256: str | None = None
    host_id: str | None = None


def evolve(agent: Agent | None, event: AgentEvent) -> Agent:
    if isinstance(event, AgentRegistered):
        return _registered(agent, event)
    if agent is None:
        raise ValueError(f"{type(event).__name__} before agent.registered on {event.stream_id}")
    agent = replace(agent, version=event.version, updated_at=event.at)
    match event:
        case AgentRegistered():  # handled above; kept so the match stays exhaustive
            return agent
        case AgentOnline():
            return replace(agent, status=AgentStatus.ONLINE)
        case AgentOffline():
            return replace(agent, status=AgentStatus.OFFLINE)
        case AgentDeregistered():
            return replace(agent, status=AgentStatus.DEREGISTERED)
        case _:
            assert_never(event)


def _registered(previous: Agent | None, event: AgentRegistered) -> Agent:
    return Agent(
        agent_id=AgentId(event.stream_id),
        version=event.version,
        agent_type=event.agent_type,
        mode=event.mode,
        hostname=event.hostname,
        capabilities=event.capabilities,
        max_concurrency=event.max_concurrency,
        status=AgentStatus.ONLINE,
        registered_at=previous.registered_at if previous else event.at,
        updated_at=event.at,
        metadata=dict(event.metadata),
        token_sha256=event.token_sha256,
        host_id=event.host_id,
    )


def replay(events: list[AgentEvent]) -> Agent | None:
    agent: Agent | None = None
    for event in events:
        agent = evolve(agent, event)
    return agent


def register(
    existing: Agent | None, reg: Registration, now: datetime, actor: str
) -> list[AgentEvent]:
    """Registration is an upsert: the same id registering again replaces its description."""
    return [
        AgentRegistered(
            stream_id=reg.agent_id,
            version=existing.next_version if existing else 1,
            at=now,
            actor=actor,
            agent_type=reg.agent_type,
            mode=reg.mode,
            hostname=reg.hostname,
            capabilities=reg.capabilities,
            max_concurrency=reg.max_concurrency,
            metadata=reg.metadata,
            token_sha256=reg.token_sha256,
            host_id=reg.host_id,
        )
    ]


def come_online(agent: Agent, now: datetime, actor: str) -> list[AgentEvent]:
    if agent.status is AgentStatus.DEREGISTERED:
        raise AgentUnavailable(agent.agent_id, agent.status)
    if agent.status is AgentStatus.ONLINE:
        return []
    return [AgentOnline(**agent.envelope(now, actor))]


def go_offline(agent: Agent, message: str, now: datetime, actor: str) -> list[AgentEvent]:
    if agent.status is not AgentStatus.ONLINE:
        return []
    return [AgentOffline(**agent.envelope(now, actor), message=message)]


def deregister(agent: Agent, now: datetime, actor: str) -> list[AgentEvent]:
    if agent.status is AgentStatus.DEREGISTERED:
        return []
    return [AgentDeregistered(**agent.envelope(now, actor))]


def can_take_work(agent: Agent) -> bool:
    return agent.status is AgentStatus.ONLINE
