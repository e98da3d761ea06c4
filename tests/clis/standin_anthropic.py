"""The Anthropic Messages API as Claude Code uses it: `POST /v1/messages` (SSE when
`stream` is true: message_start, content_block_start/delta/stop, message_delta,
message_stop) and `POST /v1/messages/count_tokens`; 401 with an `authentication_error`."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from tests.clis.standin_script import (
    FILE_NAME,
    FILE_TEXT,
    FINAL_TEXT,
    MODEL,
    SIDE_TEXT,
    USAGE,
    Scene,
    new_id,
    sse,
)


def _anthropic_has_result(body: dict[str, Any]) -> bool:
    for message in body.get("messages") or []:
        content = message.get("content")
        if isinstance(content, list) and any(
            isinstance(b, dict) and b.get("type") == "tool_result" for b in content
        ):
            return True
    return False


def _anthropic_workdir(body: dict[str, Any]) -> str | None:
    """Claude Code tells the model its working directory in the system prompt."""
    system = body.get("system")
    texts = [system] if isinstance(system, str) else [b.get("text", "") for b in system or []]
    for text in texts:
        for line in str(text).splitlines():
            label, _, value = line.strip().lstrip("- ").partition(":")
            if label.strip().lower() in ("working directory", "primary working directory"):
                return value.strip()
    return None


def _anthropic_blocks(body: dict[str, Any]) -> tuple[list[dict[str, Any]], str]:
    tools = {t.get("name") for t in body.get("tools") or [] if isinstance(t, dict)}
    if "Write" in tools and not _anthropic_has_result(body):
        workdir = _anthropic_workdir(body) or "."
        return [
            {"type": "text", "text": "I will create the file."},
            {
                "type": "tool_use",
                "id": new_id("toolu"),
                "name": "Write",
                "input": {"file_path": f"{workdir.rstrip('/')}/{FILE_NAME}", "content": FILE_TEXT},
            },
        ], "tool_use"
    text = FINAL_TEXT if tools else SIDE_TEXT
    return [{"type": "text", "text": text}], "end_turn"


def _anthropic_usage(output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": USAGE["input"],
        "cache_creation_input_tokens": USAGE["cache_write"],
        "cache_read_input_tokens": USAGE["cache_read"],
        "output_tokens": output_tokens,
    }


def _anthropic_stream(blocks: list[dict[str, Any]], stop: str) -> StreamingResponse:
    message_id = new_id("msg")
    events: list[tuple[str | None, dict[str, Any] | str]] = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": message_id,
                    "type": "message",
                    "role": "assistant",
                    "model": MODEL,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": _anthropic_usage(1),
                },
            },
        ),
        ("ping", {"type": "ping"}),
    ]
    for index, block in enumerate(blocks):
        if block["type"] == "text":
            start = {"type": "text", "text": ""}
            delta = {"type": "text_delta", "text": block["text"]}
        else:
            start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
        events += [
            (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": start},
            ),
            (
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
            ),
            ("content_block_stop", {"type": "content_block_stop", "index": index}),
        ]
    events += [
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": USAGE["output"]},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return sse(events)


async def anthropic_messages(request: Request) -> Response:
    scene: Scene = request.app.state.scene
    body = await request.json()
    scene.record(request, body)
    if not scene.authorised(request):
        return JSONResponse(
            {
                "type": "error",
                "error": {"type": "authentication_error", "message": "invalid x-api-key"},
            },
            status_code=401,
            headers={"request-id": new_id("req")},
        )
    blocks, stop = _anthropic_blocks(body)
    if body.get("stream"):
        return _anthropic_stream(blocks, stop)
    return JSONResponse(
        {
            "id": new_id("msg"),
            "type": "message",
            "role": "assistant",
            "model": MODEL,
            "content": blocks,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": _anthropic_usage(USAGE["output"]),
        }
    )


async def anthropic_count_tokens(request: Request) -> Response:
    scene: Scene = request.app.state.scene
    scene.record(request, await request.json())
    if not scene.authorised(request):
        return JSONResponse(
            {
                "type": "error",
                "error": {"type": "authentication_error", "message": "invalid x-api-key"},
            },
            status_code=401,
        )
    return JSONResponse({"input_tokens": USAGE["input"]})
