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

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.clis.standin_anthropic import anthropic_count_tokens, anthropic_messages
from tests.clis.standin_openai import chat_completions, openai_responses
from tests.clis.standin_script import Scene


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
