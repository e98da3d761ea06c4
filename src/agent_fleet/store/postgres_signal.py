"""Wakes long-polls on every replica: the NOTIFY each append sends says what changed.

An append that makes a task claimable, frees an agent's slot or changes an agent's
status sends one NOTIFY (delivered at commit) naming it: the opening's
capabilities and mode, the agent's id. Each replica wakes one of its own
long-polls per opening, as a local notice would, and ignores what it sent
itself (it woke its own waiters already).
"""

import asyncio
import json
import secrets
from collections.abc import Mapping
from typing import Any

import psycopg
import structlog

from agent_fleet.domain.agent import Agent
from agent_fleet.domain.matching import Appetite, Opening, freed_holder, opening_of
from agent_fleet.domain.states import ExecutionMode
from agent_fleet.domain.task import Task
from agent_fleet.ports.signal import Ticket
from agent_fleet.store.signal import AsyncioTaskSignal

log = structlog.get_logger("agent_fleet.store")
CHANNEL = "agent_fleet_tasks"
RECONNECT_SECS = 1.0
MAX_PAYLOAD_BYTES = 7900  # PostgreSQL refuses a NOTIFY payload of 8000 bytes or more


def new_origin() -> str:
    """Names one process's notices, so that it can skip its own."""
    return secrets.token_hex(8)


def notice(
    origin: str,
    tasks: Mapping[str, tuple[Task | None, Task]],
    agents: Mapping[str, tuple[Agent | None, Agent]],
) -> str | None:
    """The payload to NOTIFY for an append's (before, after) pairs, or None: nothing to wake."""
    openings = [o for before, after in tasks.values() if (o := opening_of(before, after))]
    woken = {a for before, after in tasks.values() if (a := freed_holder(before, after))}
    woken |= {i for i, (b, a) in agents.items() if b is None or b.status is not a.status}
    if not openings and not woken:
        return None
    body: dict[str, Any] = {
        "o": origin,
        "w": [[sorted(o.capabilities), o.mode.value] for o in openings],
        "a": sorted(woken),
    }
    payload = json.dumps(body, separators=(",", ":"))
    if len(payload.encode()) > MAX_PAYLOAD_BYTES:
        return json.dumps({"o": origin, "all": True})  # rare: very long capability lists
    return payload


class PostgresTaskSignal:
    def __init__(self, url: str, origin: str) -> None:
        self._url = url
        self._origin = origin
        self._local = AsyncioTaskSignal()

    # Local notices wake local waiters at once; other replicas hear the store's NOTIFY.
    def notify(self, opening: Opening | None = None) -> None:
        self._local.notify(opening)

    def wake_agent(self, agent_id: str) -> None:
        self._local.wake_agent(agent_id)

    def wake_all(self) -> None:
        self._local.wake_all()

    def line_up(self, appetite: Appetite) -> Ticket:
        return self._local.line_up(appetite)

    async def wait(self, timeout: float) -> bool:  # noqa: ASYNC109 -- the port's contract
        return await self._local.wait(timeout)

    def hear(self, payload: str) -> None:
        """Act on one NOTIFY payload from any replica."""
        try:
            body = json.loads(payload)
            if body.get("o") == self._origin:
                return
            if body.get("all"):
                self._local.wake_all()
                return
            for capabilities, mode in body["w"]:
                self._local.notify(Opening(frozenset(capabilities), ExecutionMode(mode)))
            for agent_id in body["a"]:
                self._local.wake_agent(str(agent_id))
        except (ValueError, KeyError, TypeError, AttributeError):
            self._local.wake_all()  # a replica of an older version: it says nothing more

    async def run(self, stop: asyncio.Event) -> None:
        """Listen until `stop`; a lost connection is re-opened (long-polls still time out)."""
        while not stop.is_set():
            try:
                await self._listen(stop)
            except psycopg.Error as e:
                log.warning("LISTEN connection lost; reconnecting", error=str(e))
                try:
                    async with asyncio.timeout(RECONNECT_SECS):
                        await stop.wait()
                except TimeoutError:
                    pass

    async def _listen(self, stop: asyncio.Event) -> None:
        async with await psycopg.AsyncConnection.connect(self._url, autocommit=True) as conn:
            await conn.execute(f"LISTEN {CHANNEL}")
            # Anything may have arrived while we were not listening.
            self._local.wake_all()
            while not stop.is_set():
                async for message in conn.notifies(timeout=1.0):
                    self.hear(message.payload)
