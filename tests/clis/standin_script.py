"""The stand-in model's script and shared parts: what it answers, its token counts, the
requests it saw, and server-sent events."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import StreamingResponse

FILE_NAME = "standin-hello.txt"
FILE_TEXT = "hello from the stand-in model\n"
FINAL_TEXT = "Created standin-hello.txt with a greeting."
SIDE_TEXT = "Add standin-hello.txt"
MODEL = "standin-model"

# Token counts the stand-in reports, distinct so a test can tell which field went where.
USAGE = {"input": 1200, "output": 34, "cache_read": 500, "cache_write": 70}


@dataclass
class Scene:
    key: str
    requests: list[dict[str, Any]] = field(default_factory=list)

    def record(self, request: Request, body: Any) -> None:
        self.requests.append(
            {
                "method": request.method,
                "path": request.url.path,
                "headers": {k: v for k, v in request.headers.items() if k != "authorization"},
                "body": body,
            }
        )

    def authorised(self, request: Request) -> bool:
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        return self.key in (bearer, request.headers.get("x-api-key", ""))


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


def sse(events: Iterable[tuple[str | None, dict[str, Any] | str]]) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        for name, data in events:
            text = data if isinstance(data, str) else json.dumps(data)
            head = f"event: {name}\n" if name else ""
            yield f"{head}data: {text}\n\n".encode()

    return StreamingResponse(
        body(), media_type="text/event-stream", headers={"cache-control": "no-cache"}
    )
