"""The agent's side of the HTTP API, with retries that outlast a restarting server.

ClientError
├── NotRegistered      -- 404 for this agent: register again
└── Refused(status)    -- a 4xx that retrying cannot fix (409 stale, 403, 422, ...)
"""

import asyncio
import hashlib
import os
import random
from dataclasses import dataclass
from pathlib import Path
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
    #: Where the registry token outlives this process: a registered id is protected by
    #: it (even on a server without a shared token), so registering again takes it.
    token_file: Path | None = None

    def header(self) -> dict[str, str]:
        return _bearer(self.registry_token or self.shared_token)

    def registration_header(self) -> dict[str, str]:
        return _bearer(self.shared_token or self.registry_token or self._saved())

    def keep(self, registry_token: str) -> None:
        self.registry_token = registry_token
        if self.token_file is None:
            return
        self.token_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temp = self.token_file.with_suffix(".tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(registry_token)
        temp.replace(self.token_file)

    def _saved(self) -> str | None:
        if self.token_file is None:
            return None
        try:
            return self.token_file.read_text(encoding="utf-8").strip() or None
        except OSError:
            return None


def token_file_for(work_dir: Path, server: str, agent_id: str) -> Path:
    """One file per server and agent id, named by a hash (ids may hold any character)."""
    key = hashlib.sha256(f"{server.rstrip('/')}\n{agent_id}".encode()).hexdigest()[:32]
    return work_dir / ".registry-tokens" / key


def _bearer(token: str | None) -> dict[str, str]:
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
                self.credentials.registration_header() if registering else self.credentials.header()
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
