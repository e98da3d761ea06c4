"""The agent's side of the HTTP API, with retries that outlast a restarting server.

ClientError
├── NotRegistered      -- 404 for this agent: register again
└── Refused(status)    -- a 4xx that retrying cannot fix (409 stale, 403, 422, ...)
"""

import asyncio
import random
from dataclasses import dataclass
from typing import Any

import httpx
import structlog

log = structlog.get_logger("agent_fleet.agent")
BACKOFF_FIRST_SECS = 0.5
BACKOFF_MAX_SECS = 30.0


class ClientError(Exception):
    pass


class NotRegistered(ClientError):
    pass


class Refused(ClientError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


@dataclass(slots=True)
class Credentials:
    shared_token: str | None
    registry_token: str | None = None

    def header(self) -> dict[str, str]:
        token = self.registry_token or self.shared_token
        return {"Authorization": f"Bearer {token}"} if token else {}


class FleetClient:
    def __init__(
        self, server: str, credentials: Credentials, *, retry_forever: bool = True
    ) -> None:
        self._http = httpx.AsyncClient(base_url=server.rstrip("/"), timeout=httpx.Timeout(30.0))
        self.credentials = credentials
        self._retry_forever = retry_forever
        self.stopping = asyncio.Event()

    async def close(self) -> None:
        await self._http.aclose()

    async def call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        *,
        wait_secs: float = 30.0,
        attempts: int | None = None,
        registering: bool = False,
    ) -> httpx.Response:
        """Send until the server answers: connection errors and 5xx are retried with
        exponential backoff and jitter; a 4xx is final and raised as a ClientError."""
        delay = BACKOFF_FIRST_SECS
        tries = 0
        while True:
            tries += 1
            headers = (
                {"Authorization": f"Bearer {self.credentials.shared_token}"}
                if registering and self.credentials.shared_token
                else self.credentials.header()
            )
            try:
                reply = await self._http.request(
                    method, path, json=body, headers=headers, timeout=wait_secs
                )
            except httpx.HTTPError as e:
                problem = f"{type(e).__name__}: {e}"
            else:
                if reply.status_code < 400:
                    return reply
                if reply.status_code < 500:
                    raise _refusal(reply)
                problem = f"HTTP {reply.status_code}"
            if (attempts is not None and tries >= attempts) or (
                not self._retry_forever and tries >= 5
            ):
                raise ClientError(f"{method} {path}: {problem}")
            log.warning(
                "server unreachable, retrying", call=path, problem=problem, retry_in=round(delay, 1)
            )
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))  # noqa: S311 -- jitter
            delay = min(delay * 2, BACKOFF_MAX_SECS)


def _refusal(reply: httpx.Response) -> ClientError:
    try:
        body = reply.json()
        message, code = str(body.get("error")), str(body.get("code"))
    except ValueError:
        message, code = reply.text[:200], ""
    if reply.status_code == 404 and code == "agent_not_found":
        return NotRegistered(message)
    return Refused(reply.status_code, message)
