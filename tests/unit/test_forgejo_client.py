"""The Forgejo client through httpx.MockTransport: every request it makes must be an
operation of Forgejo's own API description, and its answers are read as Forgejo sends them."""

import asyncio
import json
from typing import Any

import httpx
import pytest

from agent_fleet.domain.errors import ForgeError
from agent_fleet.domain.states import PrState
from agent_fleet.forgejo.client import ForgejoClient
from tests.paths import WEBHOOKS
from tests.swagger_check import operation_for, request_problems

PR_FIXTURE = json.loads((WEBHOOKS / "pull_request_closed_merged.json").read_text())


class FakeForgejo:
    def __init__(self, responses: dict[str, tuple[int, Any]]) -> None:
        self.responses = responses
        self.seen: list[tuple[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        template, operation = operation_for(request.method, request.url.path)
        assert request.headers["authorization"] == "token t0k3n"
        body = json.loads(request.content) if request.content else None
        assert request_problems(operation, dict(request.url.params), body) == []
        self.seen.append((request.method, template))
        status, payload = self.responses.get(template, (404, {"message": "not found"}))
        if isinstance(payload, list) and payload:  # a scripted sequence of answers
            status, payload = payload.pop(0)
        return httpx.Response(status, json=payload)


def client_with(fake: FakeForgejo) -> ForgejoClient:
    return ForgejoClient(
        "https://forgejo.example.com", "t0k3n", transport=httpx.MockTransport(fake)
    )


def test_write_permission_decides_who_may_trigger() -> None:
    perm = "/repos/{owner}/{repo}/collaborators/{collaborator}/permission"

    async def scenario() -> list[bool]:
        answers = []
        for level in ("write", "admin", "read", "none"):
            fake = FakeForgejo({perm: (200, {"permission": level, "role_name": level})})
            client = client_with(fake)
            answers.append(await client.can_write("acme/widgets", "carol"))
            await client.close()
        missing = client_with(FakeForgejo({}))
        answers.append(await missing.can_write("acme/widgets", "stranger"))
        await missing.close()
        return answers

    assert asyncio.run(scenario()) == [True, True, False, False, False]


def test_pull_requests_are_read_as_forgejo_sends_them() -> None:
    fake = FakeForgejo({"/repos/{owner}/{repo}/pulls/{index}": (200, PR_FIXTURE["pull_request"])})

    async def scenario() -> Any:
        client = client_with(fake)
        try:
            return await client.pull_request("acme/widgets", 13)
        finally:
            await client.close()

    pr = asyncio.run(scenario())
    assert pr.number == 13 and pr.state is PrState.MERGED
    assert pr.url == PR_FIXTURE["pull_request"]["html_url"]


def test_comments_retry_server_errors_then_succeed() -> None:
    path = "/repos/{owner}/{repo}/issues/{index}/comments"
    fake = FakeForgejo({path: (0, [(502, {}), (201, {"id": 7, "body": "hi"})])})

    async def scenario() -> None:
        client = client_with(fake)
        try:
            await client.comment("acme/widgets", 12, "Picked up by an agent")
        finally:
            await client.close()

    asyncio.run(scenario())
    assert fake.seen == [("POST", path), ("POST", path)]


def test_client_errors_are_forge_errors_and_names_are_checked() -> None:
    perm = "/repos/{owner}/{repo}/collaborators/{collaborator}/permission"
    fake = FakeForgejo({perm: (403, {"message": "forbidden"})})

    async def scenario() -> None:
        client = client_with(fake)
        try:
            await client.can_write("acme/widgets", "carol")
        finally:
            await client.close()

    with pytest.raises(ForgeError, match="HTTP 403"):
        asyncio.run(scenario())
    with pytest.raises(ForgeError, match="not owner/name"):
        asyncio.run(client_with(FakeForgejo({})).can_write("../../etc", "x"))
