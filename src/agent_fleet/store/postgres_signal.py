"""Wakes long-polls on every replica: LISTEN for the NOTIFY that each task append sends."""

import asyncio

import psycopg
import structlog

from agent_fleet.services.signal import AsyncioTaskSignal

log = structlog.get_logger("agent_fleet.store")
CHANNEL = "agent_fleet_tasks"
RECONNECT_SECS = 1.0


class PostgresTaskSignal:
    def __init__(self, url: str) -> None:
        self._url = url
        self._local = AsyncioTaskSignal()

    def notify(self) -> None:
        # Local waiters wake at once; other replicas hear the NOTIFY sent at commit.
        self._local.notify()

    async def wait(self, timeout: float) -> bool:  # noqa: ASYNC109 -- the port's contract
        return await self._local.wait(timeout)

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
            self._local.notify()
            while not stop.is_set():
                async for _ in conn.notifies(timeout=1.0):
                    self._local.notify()
