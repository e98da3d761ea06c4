"""Notices a client that hung up while its request waits (a long-poll whose agent died)."""

import asyncio
import contextlib
from collections.abc import AsyncIterator

from starlette.requests import Request


@contextlib.asynccontextmanager
async def client_gone(request: Request) -> AsyncIterator[asyncio.Event]:
    """An event set once the client disconnects, for as long as the block runs.

    The body has been read by then, so the next ASGI message the server has for
    this request is `http.disconnect`: waiting for it costs nothing until it comes.
    """
    gone = asyncio.Event()

    async def watch() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass
        gone.set()

    watcher = asyncio.create_task(watch())
    try:
        yield gone
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
