"""A minimal keep-alive HTTP/1.1 JSON client for load generation.

httpx spends more CPU per request than the server under test does for a
trivial endpoint; on two shared cores that would measure the client. This one
writes a request and reads `Content-Length` bytes back over one persistent
connection — nothing else — so the server is what runs out of CPU first.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any


class HttpError(Exception):
    pass


class RawClient:
    """One connection; requests are sent one after another (like one agent)."""

    def __init__(self, url: str, headers: dict[str, str] | None = None) -> None:
        hostport = url.removeprefix("http://").rstrip("/")
        host, _, port = hostport.partition(":")
        self.host, self.port = host, int(port or 80)
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self._fixed = f"Host: {hostport}\r\n{extra}".encode()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        return self._reader, self._writer

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
        self._reader = self._writer = None

    async def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        for attempt in (1, 2):
            reader, writer = await self._connect()
            extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items()).encode()
            head = f"{method} {path} HTTP/1.1\r\n".encode() + self._fixed + extra
            if body or method == "POST":
                head += (
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n".encode()
                )
            try:
                writer.write(head + b"\r\n" + body)
                return await self._read(reader)
            except (ConnectionError, asyncio.IncompleteReadError):
                await self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def post(self, path: str, payload: Any) -> tuple[int, Any]:
        status, data = await self.request("POST", path, json.dumps(payload).encode())
        return status, (json.loads(data) if data else None)

    async def get(self, path: str) -> tuple[int, bytes]:
        return await self.request("GET", path)

    async def _read(self, reader: asyncio.StreamReader) -> tuple[int, bytes]:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length = 0
        close = False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            lname = name.strip().lower()
            if lname == "content-length":
                length = int(value)
            elif lname == "transfer-encoding":
                raise HttpError("chunked replies are not supported by the bench client")
            elif lname == "connection" and value.strip().lower() == "close":
                close = True
        data = await reader.readexactly(length) if length else b""
        if close:
            await self.close()
        return status, data
