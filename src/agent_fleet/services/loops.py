"""Runs each background duty as a stoppable loop: `tick()` then wait on the stop event."""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

import structlog

from agent_fleet.ports.signal import TaskSignal

log = structlog.get_logger("agent_fleet.loops")

Tick = Callable[[], Awaitable[int]]


async def run_every(
    name: str,
    tick: Tick,
    interval: timedelta,
    stop: asyncio.Event,
    wake: TaskSignal | None = None,
) -> None:
    """Call `tick` every `interval` (and at once on `wake`, when given) until `stop` is set.

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
        await _pause(interval.total_seconds(), stop, wake)


async def _pause(seconds: float, stop: asyncio.Event, wake: TaskSignal | None) -> None:
    waits: list[asyncio.Future[bool]] = [asyncio.ensure_future(stop.wait())]
    if wake is not None:
        waits.append(asyncio.ensure_future(wake.wait(seconds)))
    try:
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in waits:
            waiting.cancel()
        await asyncio.gather(*waits, return_exceptions=True)
