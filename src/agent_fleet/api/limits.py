"""Request size limits: a pure-ASGI guard that refuses bodies over the limit with 413 before
parsing, and the caps on free text inside them that the body models check while they validate.

The text caps are configuration, but a pydantic model is declared once for the whole
process: the guard puts the app's caps in a context variable for the request, and the
models' validators read them from there (the defaults hold outside a request).
"""

import json
from contextvars import ContextVar
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send


@dataclass(frozen=True, slots=True)
class TextLimits:
    """Caps on what becomes an event: status messages, receipt summaries and errors (UTF-8
    bytes each), and an agent's registration metadata (bytes of its JSON)."""

    event_text_bytes: int = 65_536
    metadata_bytes: int = 16_384


TEXT_LIMITS: ContextVar[TextLimits] = ContextVar("text_limits", default=TextLimits())  # noqa: B039 (frozen)


class BodyTooLarge(Exception):
    pass


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int, text: TextLimits | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.text = text or TextLimits()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        TEXT_LIMITS.set(self.text)  # this request's task only: uvicorn runs each in its own
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await _refuse(send, self.max_bytes)
            return
        if declared is None and scope.get("method") in ("POST", "PUT", "PATCH"):
            await self._buffered(scope, receive, send)
            return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge:
            # A chunked body that grew past the limit: nothing was parsed or stored.
            if not started:
                await _refuse(send, self.max_bytes)

    async def _buffered(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A body of unknown length (chunked) is read up to the limit before the app sees
        it: over the limit is a 413 here, not a parse error deep in the framework."""
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([message], receive), send)
                return
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_bytes:
                await _refuse(send, self.max_bytes)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        whole: Message = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay([whole], receive), send)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    async def replaying() -> Message:
        return messages.pop(0) if messages else await receive()

    return replaying


async def _refuse(send: Send, max_bytes: int) -> None:
    body = json.dumps(
        {"error": f"request body exceeds {max_bytes} bytes", "code": "payload_too_large"}
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": body})
