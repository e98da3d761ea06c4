"""Stall detection for a local agent process: stopped when it shows no progress for its
idle timeout (TERM to its group, a grace period, then KILL)."""

import asyncio
import time
from collections.abc import Callable
from datetime import timedelta

from agent_fleet.execution.process import AgentProcess


class IdleWatch:
    """Told of progress by `progressed()`; `guard(process)` stops the process once none
    came for `limit`, and leaves `stalled` set. A None limit never stops anything."""

    def __init__(
        self, limit: timedelta | None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.stalled = False
        self._clock = clock
        self._last = clock()

    def progressed(self) -> None:
        self._last = self._clock()

    @property
    def idle_secs(self) -> float:
        return self._clock() - self._last

    async def guard(self, process: AgentProcess) -> None:
        """Run beside `process.wait()`; returns when it stopped a stalled process (or
        never, until cancelled)."""
        if self.limit is None:
            await asyncio.Event().wait()  # nothing to watch: wait to be cancelled
            return
        limit = self.limit.total_seconds()
        while True:
            remaining = limit - self.idle_secs
            if remaining <= 0:
                self.stalled = True
                await process.stop()
                return
            await asyncio.sleep(min(remaining, 1.0) + 0.01)
