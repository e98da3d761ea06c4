"""The in-process TaskSignal, the SQLite and in-memory stores' (one process per store; with
PostgreSQL, `postgres_signal` adds the other replicas' notices to it): one long-poll woken
per claimable task, watchers on every notice.

Long-polls stand in one line, oldest first. A task that becomes claimable wakes
the first of them that could take it, and nobody else: a thousand idle waiters
cost a scan of the line, not a thousand claims. A woken waiter that does not
answer its wake with a claim attempt (its client left, its agent went away)
passes the wake on as it leaves, so no claimable task waits on a waiter that
is gone.
"""

import asyncio
import itertools

from agent_fleet.domain.matching import Appetite, Opening


class AsyncioTaskSignal:
    def __init__(self) -> None:
        self._watchers = asyncio.Event()
        self._line: dict[int, _Ticket] = {}  # by arrival: the first has waited longest
        self._arrivals = itertools.count()

    def notify(self, opening: Opening | None = None) -> None:
        self._wake_watchers()
        if opening is not None:
            self._wake_one(opening)

    def _wake_one(self, opening: Opening) -> bool:
        """Wake the longest-waiting long-poll that could take `opening`; False if none."""
        for ticket in self._line.values():
            if ticket.appetite.takes(opening):
                ticket.wake(opening)
                return True
        return False

    def wake_agent(self, agent_id: str) -> None:
        self._wake_watchers()
        for ticket in [t for t in self._line.values() if t.appetite.agent_id == agent_id]:
            ticket.wake(None)

    def wake_all(self) -> None:
        self._wake_watchers()
        for ticket in list(self._line.values()):
            ticket.wake(None)

    def line_up(self, appetite: Appetite) -> "_Ticket":
        return _Ticket(self, appetite)

    @property
    def waiting(self) -> int:
        """Long-polls in line now (for tests and benchmarks)."""
        return len(self._line)

    async def run(self, stop: asyncio.Event) -> None:
        """In one process there is nothing to listen to."""
        await stop.wait()

    async def wait(self, timeout: float) -> bool:  # noqa: ASYNC109 -- the port's contract
        """A watcher's wait: any notice wakes it."""
        try:
            async with asyncio.timeout(timeout):
                await self._watchers.wait()
        except TimeoutError:
            return False
        return True

    def _wake_watchers(self) -> None:
        # Swap before setting: watchers of this round wake, later ones wait for the next.
        event, self._watchers = self._watchers, asyncio.Event()
        event.set()

    def _enter(self, ticket: "_Ticket") -> int:
        key = next(self._arrivals)
        self._line[key] = ticket
        return key

    def _exit(self, key: int) -> None:
        self._line.pop(key, None)


class _Ticket:
    """One long-poll's place in line; see `ports.Ticket`."""

    def __init__(self, signal: AsyncioTaskSignal, appetite: Appetite) -> None:
        self._signal = signal
        self.appetite = appetite
        self._woken = asyncio.Event()
        self._unanswered: Opening | None = None  # the opening of a wake no look answered yet
        self._key: int | None = signal._enter(self)

    def wake(self, opening: Opening | None) -> None:
        """Out of line, woken; a ticket is woken at most once until it rejoins."""
        if self._key is not None:
            self._signal._exit(self._key)
            self._key = None
        self._unanswered = self._unanswered or opening
        self._woken.set()

    def rejoin(self, appetite: Appetite) -> Opening | None:
        self._woken.clear()
        cleared, self._unanswered = self._unanswered, None
        self.appetite = appetite
        if self._key is None:
            self._key = self._signal._enter(self)  # woken, so served: to the back of the line
        return cleared

    async def wait(self, timeout: float, until: asyncio.Event | None = None) -> bool:  # noqa: ASYNC109 -- the port's contract
        if not self._woken.is_set():
            waits = [asyncio.ensure_future(self._woken.wait())]
            if until is not None:
                waits.append(asyncio.ensure_future(until.wait()))
            try:
                await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiting in waits:
                    waiting.cancel()
                await asyncio.gather(*waits, return_exceptions=True)
        return self._woken.is_set()

    def leave(self) -> None:
        if self._key is not None:
            self._signal._exit(self._key)
            self._key = None
        opening, self._unanswered = self._unanswered, None
        if opening is not None:
            self._signal._wake_one(opening)  # out of line first: it cannot be chosen again
