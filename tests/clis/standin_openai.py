"""The OpenAI APIs as Codex and aider use them: Responses (`POST /v1/responses`, SSE:
response.created … output_item.done, response.completed with usage) and chat
completions (`POST /v1/chat/completions`, plain or SSE chunks ending in [DONE]); 401
with an `invalid_api_key` error."""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

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


def _openai_unauthorised() -> JSONResponse:
    return JSONResponse(
        {
            "error": {
                "message": "Incorrect API key provided: sk-wron*****. You can find your API "
                "key at https://platform.openai.com/account/api-keys.",
                "type": "invalid_request_error",
                "param": None,
                "code": "invalid_api_key",
            }
        },
        status_code=401,
    )


_RESULT_ITEMS = frozenset(
    {"function_call_output", "custom_tool_call_output", "local_shell_call_output"}
)


def _responses_item(body: dict[str, Any]) -> dict[str, Any]:
    """The one output item of this turn: a patch creating the file, or the final message."""
    items = body.get("input") or []
    answered = any(isinstance(i, dict) and i.get("type") in _RESULT_ITEMS for i in items)
    tools = {t.get("name"): t for t in body.get("tools") or [] if isinstance(t, dict)}
    if not answered and "apply_patch" in tools:
        patch = (
            "*** Begin Patch\n"
            f"*** Add File: {FILE_NAME}\n"
            + "".join(f"+{line}\n" for line in FILE_TEXT.splitlines())
            + "*** End Patch\n"
        )
        if tools["apply_patch"].get("type") == "custom":
            return {
                "type": "custom_tool_call",
                "id": new_id("ctc"),
                "call_id": new_id("call"),
                "name": "apply_patch",
                "input": patch,
                "status": "completed",
            }
        return {
            "type": "function_call",
            "id": new_id("fc"),
            "call_id": new_id("call"),
            "name": "apply_patch",
            "arguments": json.dumps({"input": patch}),
            "status": "completed",
        }
    # Codex offers a shell tool under one of these names (by release and model family).
    command = f"printf '%s' '{FILE_TEXT}' > {FILE_NAME}"
    shell_arguments = {
        "exec_command": {"cmd": command},
        "shell_command": {"command": command},
        "shell": {"command": ["bash", "-lc", command]},
    }
    offered = next((name for name in shell_arguments if name in tools), None)
    if not answered and offered is not None:
        return {
            "type": "function_call",
            "id": new_id("fc"),
            "call_id": new_id("call"),
            "name": offered,
            "arguments": json.dumps(shell_arguments[offered]),
            "status": "completed",
        }
    return {
        "type": "message",
        "id": new_id("msg"),
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": FINAL_TEXT, "annotations": []}],
    }


def _responses_usage() -> dict[str, Any]:
    total_input = USAGE["input"] + USAGE["cache_read"]
    return {
        "input_tokens": total_input,
        "input_tokens_details": {"cached_tokens": USAGE["cache_read"]},
        "output_tokens": USAGE["output"],
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": total_input + USAGE["output"],
    }


async def openai_responses(request: Request) -> Response:
    scene: Scene = request.app.state.scene
    body = await request.json()
    scene.record(request, body)
    if not scene.authorised(request):
        return _openai_unauthorised()
    item = _responses_item(body)
    response: dict[str, Any] = {
        "id": new_id("resp"),
        "object": "response",
        "created_at": int(time.time()),
        "status": "in_progress",
        "model": MODEL,
        "output": [],
        "usage": None,
    }
    done = {**response, "status": "completed", "output": [item], "usage": _responses_usage()}
    events: list[tuple[str | None, dict[str, Any] | str]] = [
        ("response.created", {"type": "response.created", "response": response}),
        ("response.in_progress", {"type": "response.in_progress", "response": response}),
        (
            "response.output_item.added",
            {"type": "response.output_item.added", "output_index": 0, "item": item},
        ),
    ]
    if item["type"] == "message":
        events.append(
            (
                "response.output_text.delta",
                {
                    "type": "response.output_text.delta",
                    "item_id": item["id"],
                    "output_index": 0,
                    "content_index": 0,
                    "delta": FINAL_TEXT,
                },
            )
        )
    events += [
        (
            "response.output_item.done",
            {"type": "response.output_item.done", "output_index": 0, "item": item},
        ),
        ("response.completed", {"type": "response.completed", "response": done}),
    ]
    numbered = [(name, {**data, "sequence_number": n}) for n, (name, data) in enumerate(events)]
    return sse(numbered)  # type: ignore[arg-type]  # the dicts are the events' data


def _chat_reply(body: dict[str, Any]) -> str:
    """aider's first request asks for the edit (answered as a whole-file edit); the
    commit message or any later request gets a plain line."""
    messages = body.get("messages") or []
    system = " ".join(
        str(m.get("content")) for m in messages if isinstance(m, dict) and m.get("role") == "system"
    )
    if "commit message" in system.lower():
        return SIDE_TEXT
    return f"{FINAL_TEXT}\n\n{FILE_NAME}\n```\n{FILE_TEXT}```\n"


async def chat_completions(request: Request) -> Response:
    scene: Scene = request.app.state.scene
    body = await request.json()
    scene.record(request, body)
    if not scene.authorised(request):
        return _openai_unauthorised()
    text = _chat_reply(body)
    completion_id, created = new_id("chatcmpl"), int(time.time())
    usage = {
        "prompt_tokens": USAGE["input"],
        "completion_tokens": USAGE["output"],
        "total_tokens": USAGE["input"] + USAGE["output"],
    }
    if not body.get("stream"):
        return JSONResponse(
            {
                "id": completion_id,
                "object": "chat.completion",
                "created": created,
                "model": MODEL,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                ],
                "usage": usage,
            }
        )
    chunk = {"id": completion_id, "object": "chat.completion.chunk", "created": created}
    chunks: list[tuple[str | None, dict[str, Any] | str]] = [
        (
            None,
            {
                **chunk,
                "model": MODEL,
                "choices": [
                    {
                        "index": 0,
                        "delta": {"role": "assistant", "content": text},
                        "finish_reason": None,
                    }
                ],
            },
        ),
        (
            None,
            {
                **chunk,
                "model": MODEL,
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                "usage": usage,
            },
        ),
        (None, "[DONE]"),
    ]
    return sse(chunks)
