"""Connection limits uvicorn lacks: deadlines for request headers and bodies, a cap on open
connections below the file limit, and a bounded rate of log lines about both.

uvicorn (0.54, h11) only times out idle keep-alive connections: a client that
connects and never finishes its headers holds a socket, a file descriptor and
memory for ever (slowloris), and `limit_concurrency` answers 503 only once a
request's headers are complete, so it cannot save the file table either. This
protocol arms a timer while a request is being received and closes the
connection with 408 when it runs out. At the cap, the connection that has
waited longest for its headers makes room for the newcomer (slow senders go
first, so a flood of them cannot lock out /healthz); with none waiting, the
newcomer gets 503.
"""

import asyncio
import json
import resource
from dataclasses import dataclass, field
from typing import ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from agent_fleet.log_setup import Tally

#: Descriptors kept for everything that is not a client connection (store files, the
#: Forgejo and PostgreSQL pools, SSH, logs): at least this many, or a tenth of the limit.
RESERVED_FDS = 128
#: The soft file limit is raised towards the hard one, but no further than this.
FILE_LIMIT_CEILING = 65_536
#: Request line plus headers (h11 answers 400 beyond it).
MAX_HEADER_BYTES = 16 * 1024


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    header_timeout_secs: float = 5.0
    body_timeout_secs: float = 30.0
    max_connections: int = 1000


def raise_file_limit() -> int:
    """Lift the soft RLIMIT_NOFILE towards the hard one; the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = FILE_LIMIT_CEILING if hard == resource.RLIM_INFINITY else min(hard, FILE_LIMIT_CEILING)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft
        return target
    return soft


def _reserve(file_limit: int) -> int:
    return max(RESERVED_FDS, file_limit // 10)


def connection_cap(wanted: int, file_limit: int) -> int:
    """At most `wanted` connections, and never so many that the server runs out of files."""
    return max(1, min(wanted, file_limit - _reserve(file_limit)))


def accept_backlog(file_limit: int) -> int:
    """The listen backlog, which is also how many connections asyncio accepts in one pass."""
    return max(16, min(2048, _reserve(file_limit) // 2))


@dataclass
class ConnectionGuard:
    """What every connection of one server shares: the limits and the tallies that are logged."""

    limits: ConnectionLimits
    timed_out: Tally = field(init=False)
    evicted: Tally = field(init=False)
    refused: Tally = field(init=False)
    out_of_files: Tally = field(init=False)
    #: Connections waiting for their request headers, oldest first.
    waiting: dict["GuardedH11Protocol", None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.timed_out = Tally(
            "closed connections that did not send their request in time",
            header_timeout_secs=self.limits.header_timeout_secs,
            body_timeout_secs=self.limits.body_timeout_secs,
        )
        self.evicted = Tally(
            "closed the slowest connections to make room (at the cap)",
            max_connections=self.limits.max_connections,
        )
        self.refused = Tally(
            "refused connections beyond the cap", max_connections=self.limits.max_connections
        )
        self.out_of_files = Tally("could not accept connections: out of file descriptors")

    def protocol(self) -> type[H11Protocol]:
        """An h11 protocol class bound to this guard (uvicorn instantiates it per connection)."""
        return type("GuardedH11Protocol", (GuardedH11Protocol,), {"guard": self})

    def quiet_accept_errors(self, loop: asyncio.AbstractEventLoop) -> None:
        """asyncio logs a full traceback for every failed accept (EMFILE): count them instead."""
        previous = loop.get_exception_handler()

        def handle(loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
            if str(context.get("message", "")).startswith("socket.accept() out of system"):
                self.out_of_files.add()
            elif previous is not None:
                previous(loop, context)
            else:
                loop.default_exception_handler(context)

        loop.set_exception_handler(handle)


def _reply(status: str, message: str, code: str, *extra: str) -> bytes:
    body = json.dumps({"error": message, "code": code}).encode()
    head = [
        f"HTTP/1.1 {status}",
        "content-type: application/json",
        "connection: close",
        f"content-length: {len(body)}",
        *extra,
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


OVERLOADED = _reply(
    "503 Service Unavailable", "too many open connections", "overloaded", "retry-after: 1"
)


class GuardedH11Protocol(H11Protocol):
    guard: ClassVar[ConnectionGuard]
    _deadline: asyncio.TimerHandle | None = None
    _waiting_for: str | None = None  # "headers" or "body": what the deadline is for

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.guard.limits.max_connections and not self._evict_one():
            self.guard.refused.add()
            transport.write(OVERLOADED)
            transport.close()
            return
        self._follow()

    def _evict_one(self) -> bool:
        """Close the connection that has waited longest for its headers, if there is one."""
        for oldest in self.guard.waiting:
            oldest._disarm()
            self.guard.evicted.add()
            oldest._close(OVERLOADED)
            return True
        return False

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _follow(self) -> None:
        """Arm the deadline for what the connection is now receiving, or disarm it."""
        state = self.conn.their_state
        if state is h11.IDLE and self.timeout_keep_alive_task is None:
            self._arm("headers", self.guard.limits.header_timeout_secs)
        elif state is h11.SEND_BODY:
            self._arm("body", self.guard.limits.body_timeout_secs)
        else:
            # Idle between requests (uvicorn's keep-alive timer watches that), or the
            # request is in: the app's own time is not limited here.
            self._disarm()

    def _arm(self, waiting_for: str, secs: float) -> None:
        if self._waiting_for == waiting_for or self.transport.is_closing():
            return  # a deadline is for the whole phase: trickling bytes does not extend it
        self._disarm()
        self._waiting_for = waiting_for
        self._deadline = self.loop.call_later(secs, self._expire)
        if waiting_for == "headers":
            self.guard.waiting[self] = None

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self.guard.waiting.pop(self, None)
        self._deadline = None
        self._waiting_for = None

    def _expire(self) -> None:
        waiting_for = self._waiting_for or "headers"
        self._disarm()
        if self.transport.is_closing():
            return
        self.guard.timed_out.add()
        limits = self.guard.limits
        secs = limits.body_timeout_secs if waiting_for == "body" else limits.header_timeout_secs
        message = f"request {waiting_for} not received within {secs:g} s"
        self._close(_reply("408 Request Timeout", message, "request_timeout"))

    def _close(self, reply: bytes) -> None:
        """Say why when no response has started yet, then close."""
        # h11 leaves SEND_RESPONSE in the same step that sends a response's first bytes.
        if self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            self.transport.write(reply)
        if self.cycle is not None and not self.cycle.response_complete:
            # The app may be waiting for the body: tell it the client is gone.
            self.cycle.disconnected = True
            self.cycle.message_event.set()
        self.transport.close()
