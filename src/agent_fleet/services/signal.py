"""An in-process TaskSignal: wakes every waiting long-poll when work may be available."""

import asyncio


class AsyncioTaskSignal:
    """Each notify wakes all current waiters; a waiter arriving later waits for the next one."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        # Swap before setting: waiters of this round wake, new waiters get a fresh event.
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def run(self, stop: asyncio.Event) -> None:
        """In one process there is nothing to listen to."""
        await stop.wait()

    async def wait(self, timeout: float) -> bool:  # noqa: ASYNC109 -- the port's contract
        try:
            async with asyncio.timeout(timeout):
                await self._event.wait()
        except TimeoutError:
            return False
        return True
