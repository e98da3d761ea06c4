"""The agent's side of the HTTP API, with retries that outlast a restarting server.

ClientError
├── NotRegistered      -- 404 for this agent: register again
└── Refused(status)    -- a 4xx that retrying cannot fix (409 stale, 403, 422, ...)
"""

import asyncio
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    stop_never,
    wait_exponential_jitter,
)

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
        limit = attempts if attempts is not None else (None if self._retry_forever else 5)
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(_Transient),
            stop=stop_never if limit is None else stop_after_attempt(limit),
            wait=wait_exponential_jitter(initial=BACKOFF_FIRST_SECS, max=BACKOFF_MAX_SECS),
            before_sleep=_warn_retrying(path),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    # Asked each time: registering again may have changed the token.
                    headers = (
                        self.credentials.registration_header()
                        if registering
                        else self.credentials.header()
                    )
                    return await self._once(method, path, body, headers, wait_secs)
        except _Transient as e:
            raise ClientError(f"{method} {path}: {e}") from None
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _once(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        headers: dict[str, str],
        wait_secs: float,
    ) -> httpx.Response:
        try:
            reply = await self._http.request(
                method, path, json=body, headers=headers, timeout=wait_secs
            )
        except httpx.HTTPError as e:
            raise _Transient(f"{type(e).__name__}: {e}") from None
        if reply.status_code < 400:
            return reply
        if reply.status_code < 500:
            raise _refusal(reply)
        raise _Transient(f"HTTP {reply.status_code}")


class _Transient(Exception):
    """Worth another try: no answer, or a 5xx."""


def _warn_retrying(call: str) -> Callable[[RetryCallState], None]:
    def warn(state: RetryCallState) -> None:
        problem = state.outcome.exception() if state.outcome is not None else None
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        log.warning(
            "server unreachable, retrying", call=call, problem=str(problem), retry_in=round(wait, 1)
        )

    return warn


def _refusal(reply: httpx.Response) -> ClientError:
    try:
        body = reply.json()
        message, code = str(body.get("error")), str(body.get("code"))
    except ValueError:
        message, code = reply.text[:200], ""
    if reply.status_code == 404 and code == "agent_not_found":
        return NotRegistered(message)
    return Refused(reply.status_code, message)
