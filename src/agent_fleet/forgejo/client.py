"""The Forgejo API, only the calls we make: async, token auth, timeouts, retries on 5xx.

ForgeError(FleetError)        -- Forgejo answered an error or could not be reached
"""

import asyncio
import random
from typing import Any
from urllib.parse import quote

import httpx
import structlog

from agent_fleet.domain.errors import FleetError
from agent_fleet.domain.states import PrState
from agent_fleet.domain.values import PullRequest
from agent_fleet.ports import ForgePull

log = structlog.get_logger("agent_fleet.forgejo")
WRITE_PERMISSIONS = frozenset({"write", "admin", "owner"})
RETRIES = 3


class ForgeError(FleetError):
    def __init__(self, call: str, reason: str) -> None:
        super().__init__(f"forgejo {call}: {reason}")
        self.call = call
        self.reason = reason


def _repo_path(repo: str) -> str:
    owner, _, name = repo.partition("/")
    if not owner or not name or "/" in name:
        raise ForgeError("repo", f"not owner/name: {repo!r}")
    return f"/repos/{quote(owner, safe='')}/{quote(name, safe='')}"


class ForgejoClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout_secs: float = 10.0,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/api/v1",
            headers={"Authorization": f"token {token}", "Accept": "application/json"},
            timeout=timeout_secs,
            transport=transport,
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def _call(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        ok: tuple[int, ...] = (200,),
    ) -> httpx.Response:
        delay = 0.5
        for attempt in range(1, RETRIES + 1):
            try:
                reply = await self._http.request(method, path, json=body)
            except httpx.HTTPError as e:
                problem = f"{type(e).__name__}"
            else:
                if reply.status_code in ok or reply.status_code == 404:
                    return reply
                if reply.status_code < 500:
                    raise ForgeError(f"{method} {path}", f"HTTP {reply.status_code}")
                problem = f"HTTP {reply.status_code}"
            if attempt == RETRIES:
                raise ForgeError(f"{method} {path}", problem)
            log.warning("forgejo call failed, retrying", call=path, problem=problem)
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))  # noqa: S311 -- jitter
            delay *= 2
        raise AssertionError("unreachable")

    async def can_write(self, repo: str, user: str) -> bool:
        """Whether `user` may push to `repo` (and so may set agents to work on it)."""
        path = f"{_repo_path(repo)}/collaborators/{quote(user, safe='')}/permission"
        reply = await self._call("GET", path)
        if reply.status_code == 404:
            return False
        return str(reply.json().get("permission", "")).lower() in WRITE_PERMISSIONS

    async def pull_request(self, repo: str, number: int) -> PullRequest | None:
        reply = await self._call("GET", f"{_repo_path(repo)}/pulls/{int(number)}")
        if reply.status_code == 404:
            return None
        data = reply.json()
        merged = bool(data.get("merged"))
        state = (
            PrState.MERGED
            if merged
            else (PrState.CLOSED if data.get("state") == "closed" else PrState.OPEN)
        )
        return PullRequest(
            url=str(data.get("html_url", "")), number=int(data["number"]), state=state
        )

    async def pull_request_info(self, repo: str, number: int) -> ForgePull | None:
        reply = await self._call("GET", f"{_repo_path(repo)}/pulls/{int(number)}")
        if reply.status_code == 404:
            return None
        data = reply.json()
        head = data.get("head") or {}
        return ForgePull(
            number=int(data["number"]),
            url=str(data.get("html_url", "")),
            head_branch=str(head.get("label") or head.get("ref") or ""),
            body=str(data.get("body") or ""),
            merged=bool(data.get("merged")),
            closed=data.get("state") == "closed",
        )

    async def comment(self, repo: str, number: int, body: str) -> None:
        path = f"{_repo_path(repo)}/issues/{int(number)}/comments"
        reply = await self._call("POST", path, {"body": body}, ok=(201,))
        if reply.status_code == 404:
            raise ForgeError(f"POST {path}", "issue not found")
