"""The uvicorn server we run: our connection guard, and a shutdown that lets ours finish."""

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

import structlog
import uvicorn

from agent_fleet.api.connections import (
    MAX_HEADER_BYTES,
    ConnectionGuard,
    ConnectionLimits,
    accept_backlog,
    connection_cap,
    raise_file_limit,
)

log = structlog.get_logger("agent_fleet")
#: An idle keep-alive connection is closed after this.
KEEP_ALIVE_SECS = 5


class HttpServer(uvicorn.Server):
    """uvicorn with header/body deadlines and a connection cap under the file limit, that
    shuts down on SIGTERM/SIGINT without re-raising the signal afterwards, so that our own
    shutdown steps (stop the duties, close the store) still run.

    Build it inside the running event loop: it raises the file limit and takes over the
    loop's logging of failed accepts.
    """

    def __init__(
        self, app: Any, host: str, port: int, limits: ConnectionLimits, on_exit: Callable[[], None]
    ) -> None:
        super().__init__(_config(app, host, port, limits))
        self._on_exit = on_exit

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._on_exit()
        super().handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.handle_exit, sig, None)
        try:
            yield
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)


def _config(app: Any, host: str, port: int, wanted: ConnectionLimits) -> uvicorn.Config:
    file_limit = raise_file_limit()
    cap = connection_cap(wanted.max_connections, file_limit)
    if cap < wanted.max_connections:
        log.warning(
            "max_connections lowered to stay under the open-files limit",
            max_connections=wanted.max_connections,
            file_limit=file_limit,
            now=cap,
        )
    limits = ConnectionLimits(
        header_timeout_secs=wanted.header_timeout_secs,
        body_timeout_secs=wanted.body_timeout_secs,
        max_connections=cap,
    )
    guard = ConnectionGuard(limits)
    guard.quiet_accept_errors(asyncio.get_running_loop())
    log.info(
        "connection limits",
        file_limit=file_limit,
        max_connections=cap,
        header_timeout_secs=limits.header_timeout_secs,
        body_timeout_secs=limits.body_timeout_secs,
    )
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=guard.protocol(),
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        # asyncio accepts up to `backlog` connections per loop pass before any refused one
        # is closed: keep that burst inside the descriptors reserved beside the cap.
        backlog=accept_backlog(file_limit),
        timeout_keep_alive=KEEP_ALIVE_SECS,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
        lifespan="off",
    )
