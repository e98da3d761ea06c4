"""Runs each background duty as a stoppable loop: `tick()` then wait on the stop event."""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

import structlog

log = structlog.get_logger("agent_fleet.loops")

Tick = Callable[[], Awaitable[int]]


async def run_every(name: str, tick: Tick, interval: timedelta, stop: asyncio.Event) -> None:
    """Call `tick` every `interval` until `stop` is set.

    A tick that raises is logged and retried at the next interval, so a passing
    store error does not end the duty; an error in the loop itself (a bug)
    propagates and brings the service down loudly through its TaskGroup.
    """
    while not stop.is_set():
        try:
            done = await tick()
        except Exception as e:
            log.warning("loop tick failed", loop=name, error=str(e))
        else:
            if done:
                log.info("loop tick", loop=name, changed=done)
        try:
            async with asyncio.timeout(interval.total_seconds()):
                await stop.wait()
        except TimeoutError:
            pass
