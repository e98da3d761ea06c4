"""The Forgejo API, only the calls we make: async, token auth, timeouts, retries on 5xx.

Every failure is a `ForgeError(call, reason)` (domain/errors.py): Forgejo answered an
error or could not be reached.
"""

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx
import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from agent_fleet.domain.errors import ForgeError, PullRequestRefused
from agent_fleet.domain.states import PrState
from agent_fleet.domain.values import PullRequest
from agent_fleet.ports.forge import ForgeIssue, ForgePull

log = structlog.get_logger("agent_fleet.forgejo")
WRITE_PERMISSIONS = frozenset({"write", "admin", "owner"})
RETRIES = 3
PAGE = 50
MAX_PAGES = 100  # 5,000 items: a bound on what one listing may cost


def _repo_path(repo: str) -> str:
    owner, _, name = repo.partition("/")
    if not owner or not name or "/" in name:
        raise ForgeError("repo", f"not owner/name: {repo!r}")
    return f"/repos/{quote(owner, safe='')}/{quote(name, safe='')}"


def _warn_retrying(call: str) -> Callable[[RetryCallState], None]:
    def warn(state: RetryCallState) -> None:
        problem = state.outcome.exception() if state.outcome is not None else None
        log.warning("forgejo call failed, retrying", call=call, problem=str(problem))

    return warn


class _Transient(Exception):
    """Worth another try: no answer, or a 5xx."""


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
        params: dict[str, str | int] | None = None,
    ) -> httpx.Response:
        """One call, tried again (up to RETRIES in all) when Forgejo is away or answers 5xx."""
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(_Transient),
            stop=stop_after_attempt(RETRIES),
            wait=wait_random_exponential(multiplier=0.5, max=8),
            before_sleep=_warn_retrying(path),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._once(method, path, body, ok, params)
        except _Transient as e:
            raise ForgeError(f"{method} {path}", str(e)) from None
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _once(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        ok: tuple[int, ...],
        params: dict[str, str | int] | None,
    ) -> httpx.Response:
        try:
            reply = await self._http.request(method, path, json=body, params=params)
        except httpx.HTTPError as e:
            raise _Transient(type(e).__name__) from None
        if reply.status_code in ok or reply.status_code == 404:
            return reply
        if reply.status_code < 500:
            raise ForgeError(f"{method} {path}", f"HTTP {reply.status_code}")
        raise _Transient(f"HTTP {reply.status_code}")

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
        return _pull(reply.json())

    async def open_pull_from(self, repo: str, branch: str) -> ForgePull | None:
        """The open PR from `branch` of `repo` itself: a fork's PR from a branch of the same
        name has the same bare `head.label`, so the head's repository is compared too."""
        items = await self._pages(f"{_repo_path(repo)}/pulls", {"state": "open"})
        for pull in map(_pull, items):
            if pull.head_branch == branch and pull.head_repo.lower() == repo.lower():
                return pull
        return None

    async def default_branch(self, repo: str) -> str:
        reply = await self._call("GET", _repo_path(repo))
        if reply.status_code == 404:
            raise PullRequestRefused(repo, "no such repository")
        return str(reply.json().get("default_branch") or "main")

    async def create_pull(
        self, repo: str, *, head: str, base: str, title: str, body: str
    ) -> ForgePull:
        """Open a PR. One already open for these branches (409: another replica, or a try
        that crashed before recording it) is found and returned instead."""
        wanted = {"head": head, "base": base, "title": title[:255], "body": body}
        path = f"{_repo_path(repo)}/pulls"
        # A refusal is an answer about this PR (no such branch, no permission), not an outage.
        reply = await self._call("POST", path, wanted, ok=(201, 403, 409, 413, 422, 423))
        if reply.status_code == 201:
            return _pull(reply.json())
        if reply.status_code == 409:
            found = await self.open_pull_from(repo, head)
            if found is not None:
                return found
        message = _message(reply)
        raise PullRequestRefused(repo, f"HTTP {reply.status_code}: {message}")

    async def comment(self, repo: str, number: int, body: str) -> bool:
        """Post a comment; False when the issue does not exist (any more)."""
        path = f"{_repo_path(repo)}/issues/{int(number)}/comments"
        reply = await self._call("POST", path, {"body": body}, ok=(201,))
        return reply.status_code != 404

    async def comment_bodies(self, repo: str, number: int) -> list[str]:
        """The texts of an issue's comments (to find our own markers)."""
        reply = await self._call("GET", f"{_repo_path(repo)}/issues/{int(number)}/comments")
        if reply.status_code == 404:
            return []
        return [str(c.get("body") or "") for c in _list(reply)]

    async def open_issues(self, repo: str) -> list[ForgeIssue]:
        """Open issues (not pull requests) with their labels."""
        path = f"{_repo_path(repo)}/issues"
        items = await self._pages(path, {"state": "open", "type": "issues"})
        return [
            ForgeIssue(
                repo=repo,
                number=int(item["number"]),
                title=str(item.get("title") or ""),
                body=str(item.get("body") or ""),
                url=str(item["html_url"]) if item.get("html_url") else None,
                labels=tuple(str(label.get("name", "")) for label in item.get("labels") or []),
            )
            for item in items
            if not item.get("pull_request")
        ]

    async def labelled_by(self, repo: str, number: int, prefix: str) -> str | None:
        """Who last added a label starting with `prefix` to an issue, from its timeline."""
        path = f"{_repo_path(repo)}/issues/{int(number)}/timeline"
        who: str | None = None
        for item in await self._pages(path, {}):
            name = str((item.get("label") or {}).get("name", ""))
            if item.get("type") != "label" or not name.startswith(prefix):
                continue
            if str(item.get("body") or "") == "1":  # Forgejo: "1" added, "" removed
                who = str((item.get("user") or {}).get("login") or "") or None
            else:
                who = None  # removed: only a later addition counts
        return who

    async def repos(self) -> list[str]:
        """The repositories the token's user can see."""
        return [str(r["full_name"]) for r in await self._pages("/user/repos", {})]

    async def _pages(self, path: str, params: dict[str, str | int]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for page in range(1, MAX_PAGES + 1):
            reply = await self._call("GET", path, params={**params, "page": page, "limit": PAGE})
            if reply.status_code == 404:
                return items
            batch = _list(reply)
            items += batch
            if len(batch) < PAGE:
                break
        return items


def _pull(data: dict[str, Any]) -> ForgePull:
    head = data.get("head") or {}
    return ForgePull(
        number=int(data["number"]),
        url=str(data.get("html_url", "")),
        head_branch=str(head.get("ref") or head.get("label") or ""),
        body=str(data.get("body") or ""),
        merged=bool(data.get("merged")),
        closed=data.get("state") == "closed",
        head_repo=str((head.get("repo") or {}).get("full_name") or ""),
    )


def _message(reply: httpx.Response) -> str:
    """Forgejo's own words for a refusal, bounded (it may echo what we sent)."""
    try:
        data = reply.json()
    except ValueError:
        return "no message"
    return str(data.get("message") if isinstance(data, dict) else "")[:300] or "no message"


def _list(reply: httpx.Response) -> list[dict[str, Any]]:
    data = reply.json()
    if not isinstance(data, list):
        raise ForgeError(str(reply.request.url.path), "expected a list")
    return [item for item in data if isinstance(item, dict)]
