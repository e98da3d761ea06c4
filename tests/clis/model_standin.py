"""A stand-in model server for the real agent CLIs: a separate HTTP process speaking the
three wire contracts they use, with a fixed two-turn script.

- Anthropic Messages (`POST /v1/messages`, SSE when `stream` is true) for Claude Code;
- OpenAI Responses (`POST /v1/responses`, SSE) for Codex;
- OpenAI chat completions (`POST /v1/chat/completions`, plain or SSE) for aider.

The script: a request whose conversation holds no result of ours yet is answered with a
tool call (or, for aider, a whole-file edit) that creates `FILE_NAME`; once the
conversation carries the tool's result, the answer is the final message `FINAL_TEXT`.
Side requests (titles, commit messages, token counts) get a short plain answer. A wrong
key is answered 401 with each API's own error body; "down" is a port nobody listens on.
Every request is recorded and can be read back at `GET /_standin/requests`.

    python -m tests.clis.model_standin --port 8124 --key sk-standin
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

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


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


def _sse(events: Iterable[tuple[str | None, dict[str, Any] | str]]) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        for name, data in events:
            text = data if isinstance(data, str) else json.dumps(data)
            head = f"event: {name}\n" if name else ""
            yield f"{head}data: {text}\n\n".encode()

    return StreamingResponse(
        body(), media_type="text/event-stream", headers={"cache-control": "no-cache"}
    )


# --- Anthropic Messages ------------------------------------------------------------------


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
                "id": _id("toolu"),
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
    message_id = _id("msg")
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
    return _sse(events)


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
            headers={"request-id": _id("req")},
        )
    blocks, stop = _anthropic_blocks(body)
    if body.get("stream"):
        return _anthropic_stream(blocks, stop)
    return JSONResponse(
        {
            "id": _id("msg"),
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


# --- OpenAI ------------------------------------------------------------------------------


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
                "id": _id("ctc"),
                "call_id": _id("call"),
                "name": "apply_patch",
                "input": patch,
                "status": "completed",
            }
        return {
            "type": "function_call",
            "id": _id("fc"),
            "call_id": _id("call"),
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
            "id": _id("fc"),
            "call_id": _id("call"),
            "name": offered,
            "arguments": json.dumps(shell_arguments[offered]),
            "status": "completed",
        }
    return {
        "type": "message",
        "id": _id("msg"),
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
        "id": _id("resp"),
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
    return _sse(numbered)  # type: ignore[arg-type]  # the dicts are the events' data


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
    completion_id, created = _id("chatcmpl"), int(time.time())
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
    return _sse(chunks)


async def recorded(request: Request) -> Response:
    return JSONResponse(request.app.state.scene.requests)


async def anything_else(request: Request) -> Response:
    body = (await request.body()).decode(errors="replace")[:2000]
    request.app.state.scene.record(request, body)
    return JSONResponse({"error": {"message": "not served by the stand-in"}}, status_code=404)


def create_app(key: str) -> Starlette:
    app = Starlette(
        routes=[
            Route("/v1/messages", anthropic_messages, methods=["POST"]),
            Route("/v1/messages/count_tokens", anthropic_count_tokens, methods=["POST"]),
            Route("/v1/responses", openai_responses, methods=["POST"]),
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/_standin/requests", recorded, methods=["GET"]),
            Route(
                "/{path:path}",
                anything_else,
                methods=["GET", "POST", "PUT", "HEAD", "DELETE", "PATCH"],
            ),
        ]
    )
    app.state.scene = Scene(key=key)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--key", required=True, help="the one API key accepted")
    args = parser.parse_args()
    uvicorn.run(create_app(args.key), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
