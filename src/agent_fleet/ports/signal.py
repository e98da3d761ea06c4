"""The wake-up signal between whoever makes work claimable and whoever waits for it."""

import asyncio
from typing import Protocol

from agent_fleet.domain.matching import Appetite, Opening


class Ticket(Protocol):
    """A long-poll's place in the line of waiting claimers (`TaskSignal.line_up`)."""

    def rejoin(self, appetite: Appetite) -> Opening | None:
        """About to look for work: a wake so far is answered by that look; back in line.

        Returns the opening of a wake this cleared: a look that then claims nothing
        for it (it found a task it already held) passes it on with `notify`."""
        ...

    async def wait(self, timeout: float, until: asyncio.Event | None = None) -> bool:  # noqa: ASYNC109 -- a plain wait with a bound
        """True when woken (look again); False on timeout or once `until` is set."""
        ...

    def leave(self) -> None:
        """Out of line for good; a wake that no look answered goes to the next in line."""
        ...


class TaskSignal(Protocol):
    """Wakes waiters when work may have become available.

    Long-polls stand in line (`line_up`): a claimable task wakes one of them, the
    one waiting longest among those that could take it, not all of them. Watchers
    (`wait`: the ssh_cli dispatcher) wake on every notice.
    """

    def notify(self, opening: Opening | None = None) -> None:
        """Work may be available; with `opening`, exactly one task became claimable."""
        ...

    def wake_agent(self, agent_id: str) -> None:
        """This agent's lot changed (a slot freed, it went away): its long-polls look again."""
        ...

    def wake_all(self) -> None:
        """Every long-poll looks again (shutting down; notices may have been missed)."""
        ...

    def line_up(self, appetite: Appetite) -> Ticket: ...
    async def run(self, stop: asyncio.Event) -> None: ...
    async def wait(self, timeout: float) -> bool: ...  # noqa: ASYNC109 -- a plain wait with a bound
