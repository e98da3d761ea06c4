"""Agent use cases: register (upsert), heartbeat, deregister, list."""

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from agent_fleet.domain import agent as agent_model
from agent_fleet.domain.agent import Agent, Registration
from agent_fleet.domain.errors import AgentIdTaken, AgentNotFound, ConcurrencyConflict
from agent_fleet.domain.ids import AgentId
from agent_fleet.domain.states import AgentMode, AgentStatus, TaskState
from agent_fleet.domain.task import Task
from agent_fleet.ports.queries import AgentQuery, TaskQuery
from agent_fleet.ports.store import Heartbeat
from agent_fleet.services.commit import MAX_CONFLICT_RETRIES
from agent_fleet.services.context import Context, append
from agent_fleet.services.tasks import TaskService


@dataclass(frozen=True, slots=True, kw_only=True)
class RegisterAgent:
    agent_id: str | None
    agent_type: str
    hostname: str | None
    capabilities: tuple[str, ...]
    max_concurrency: int
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Registered:
    agent: Agent
    #: Shown once, to the agent that registered; only its hash is stored.
    registry_token: str
    #: How often to beat, and how long a silence costs the agent its tasks.
    heartbeat_interval: timedelta
    heartbeat_timeout: timedelta


@dataclass(frozen=True, slots=True, kw_only=True)
class HeartbeatReply:
    agent: Agent
    cancel_tasks: list[str]


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_matches(agent: Agent, token: str) -> bool:
    if agent.token_sha256 is None:
        return False
    return hmac.compare_digest(agent.token_sha256, hash_token(token))


class AgentService:
    def __init__(
        self, ctx: Context, tasks: TaskService, slot_ids: frozenset[str] = frozenset()
    ) -> None:
        self._touched: dict[str, datetime] = {}  # agent id → last liveness written here
        self._ctx = ctx
        self._tasks = tasks
        #: The `[[hosts]]` slots' ids: never registered over HTTP, even before the
        #: dispatcher has recorded them (it does so in the background at start).
        self._slot_ids = slot_ids

    async def get(self, agent_id: str) -> Agent:
        agent = await self.lookup(agent_id)
        if agent is None:
            raise AgentNotFound(agent_id)
        return agent

    async def lookup(self, agent_id: str) -> Agent | None:
        return await self._ctx.store.get_agent(AgentId(agent_id))

    async def find(self, query: AgentQuery) -> list[Agent]:
        return await self._ctx.store.list_agents(query)

    async def register(self, cmd: RegisterAgent) -> Registered:
        agent_id = AgentId(cmd.agent_id or f"{cmd.agent_type}-{secrets.token_hex(4)}")
        token = secrets.token_urlsafe(32)
        reg = Registration(
            agent_id=agent_id,
            agent_type=cmd.agent_type,
            mode=AgentMode.HTTP_PULL,
            hostname=cmd.hostname,
            capabilities=tuple(dict.fromkeys(cmd.capabilities)),
            max_concurrency=cmd.max_concurrency,
            metadata=cmd.metadata,
            token_sha256=hash_token(token),
        )
        if agent_id in self._slot_ids:
            raise AgentIdTaken(agent_id, AgentMode.SSH_CLI.value)
        for tries_left in reversed(range(MAX_CONFLICT_RETRIES)):
            existing = await self._ctx.store.get_agent(agent_id)
            if existing is not None and existing.mode is not reg.mode:
                raise AgentIdTaken(agent_id, existing.mode.value)
            now = self._ctx.clock.now()
            events = agent_model.register(existing, reg, now, actor=agent_id)
            try:
                await append(self._ctx, events)
            except ConcurrencyConflict:
                if not tries_left:
                    raise  # the last writer to win names the stream and version
                continue
            await self._ctx.store.record_heartbeat(Heartbeat(agent_id=agent_id, at=now))
            self._ctx.signal.notify()  # new capacity: waiting tasks may now match
            agent = agent_model.evolve(existing, events[0])
            options = self._ctx.options
            return Registered(
                agent=agent,
                registry_token=token,
                heartbeat_interval=options.heartbeat_interval,
                heartbeat_timeout=options.heartbeat_timeout,
            )
        raise AssertionError("unreachable: the last try returns or raises")

    async def declare_capabilities(self, agent: Agent, capabilities: list[str]) -> Agent:
        """The capabilities an agent names when it dequeues become its declared set (the
        original matched what the agent declares there): one re-registration when they change."""
        wanted = tuple(dict.fromkeys(capabilities))
        for tries_left in reversed(range(MAX_CONFLICT_RETRIES)):
            if agent.capabilities == wanted:
                return agent
            reg = Registration(
                agent_id=agent.agent_id,
                agent_type=agent.agent_type,
                mode=agent.mode,
                hostname=agent.hostname,
                capabilities=wanted,
                max_concurrency=agent.max_concurrency,
                metadata=agent.metadata,
                token_sha256=agent.token_sha256,
                host_id=agent.host_id,
            )
            events = agent_model.register(agent, reg, self._ctx.clock.now(), actor=agent.agent_id)
            try:
                await append(self._ctx, events)
            except ConcurrencyConflict:
                if not tries_left:
                    raise  # the last writer to win names the stream and version
                agent = await self.get(agent.agent_id)
                continue
            self._ctx.signal.notify()
            return agent_model.evolve(agent, events[0])
        raise AssertionError("unreachable: the last try returns or raises")

    async def heartbeat(self, agent_id: str, running: list[str] | None) -> HeartbeatReply:
        """Record liveness (not an event) and tell the agent which tasks to stop."""
        agent = await self.get(agent_id)
        if agent.status is AgentStatus.DEREGISTERED:
            raise AgentNotFound(agent_id)
        now = self._ctx.clock.now()
        previous = await self._ctx.store.last_heartbeat(agent.agent_id)
        await self._ctx.store.record_heartbeat(Heartbeat(agent_id=agent.agent_id, at=now))
        if agent.status is AgentStatus.OFFLINE:
            agent = await self._come_online(agent, now)
        held = await self._ctx.store.held_tasks(agent.agent_id)
        cancel = await self._tasks_to_stop(agent, running, held, previous)
        return HeartbeatReply(agent=agent, cancel_tasks=cancel)

    async def touch(self, agent: Agent) -> Agent:
        """Any request from an agent proves it is alive (written at most every quarter
        heartbeat interval: a busy agent's dequeues need not each cost a commit)."""
        now = self._ctx.clock.now()
        last = self._touched.get(agent.agent_id)
        if last is None or now - last >= self._ctx.options.heartbeat_interval / 4:
            await self._ctx.store.record_heartbeat(Heartbeat(agent_id=agent.agent_id, at=now))
            self._touched[agent.agent_id] = now
        if agent.status is AgentStatus.OFFLINE:
            return await self._come_online(agent, now)
        return agent

    async def _come_online(self, agent: Agent, now: datetime) -> Agent:
        events = agent_model.come_online(agent, now, actor=agent.agent_id)
        try:
            await append(self._ctx, events)
        except ConcurrencyConflict:
            return await self.get(agent.agent_id)
        self._ctx.signal.notify()
        return agent_model.evolve(agent, events[0]) if events else agent

    async def _tasks_to_stop(
        self, agent: Agent, running: list[str] | None, held: list[Task], since: datetime | None
    ) -> list[str]:
        held_ids = {t.task_id for t in held}
        if running is not None:
            # The agent told us what it runs: anything it no longer holds must stop.
            return [task_id for task_id in running if task_id not in held_ids]
        # It did not say: name the tasks of this agent cancelled since its last beat.
        cancelled = await self._ctx.store.list_tasks(
            TaskQuery(state=TaskState.CANCELLED, agent_id=agent.agent_id, limit=50)
        )
        return [
            t.task_id
            for t in cancelled
            if since is None or (t.finished_at is not None and t.finished_at >= since)
        ]

    async def deregister(self, agent: Agent) -> Agent:
        now = self._ctx.clock.now()
        events = agent_model.deregister(agent, now, actor=agent.agent_id)
        if events:
            await append(self._ctx, events)
            agent = agent_model.evolve(agent, events[0])
            self._ctx.signal.wake_agent(agent.agent_id)  # its open long-polls end now
        held = await self._ctx.store.held_tasks(agent.agent_id)
        await self._tasks.release_held(held, "agent deregistered", actor=agent.agent_id)
        return agent
