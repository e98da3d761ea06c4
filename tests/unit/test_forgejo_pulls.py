"""The Forgejo client's pull-request calls (find, default branch, create) through
httpx.MockTransport, every request checked against Forgejo's API description."""

import asyncio
import copy
import json
from typing import Any

import httpx
import pytest

from agent_fleet.domain.errors import PullRequestRefused
from agent_fleet.forgejo.client import ForgejoClient
from agent_fleet.ports.forge import ForgePull
from tests.paths import WEBHOOKS
from tests.swagger_check import operation_for, request_problems, response_problems

OPENED = json.loads((WEBHOOKS / "pull_request_opened.json").read_text())
REPO = "acme/widgets"
PULLS = "/repos/{owner}/{repo}/pulls"


def pull(number: int, branch: str, head_repo: str = REPO) -> dict[str, Any]:
    pr = copy.deepcopy(OPENED["pull_request"])
    pr.update(number=number, html_url=f"https://forgejo.example.com/{REPO}/pulls/{number}")
    pr["head"].update(ref=branch, label=branch)  # a fork's label is the bare branch name too
    pr["head"]["repo"]["full_name"] = head_repo
    return pr


class Forgejo:
    """Answers by "METHOD template"; records what was asked, with bodies."""

    def __init__(self, answers: dict[str, list[tuple[int, Any]]]) -> None:
        self.answers = answers
        self.seen: list[tuple[str, str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        template, operation = operation_for(request.method, request.url.path)
        body = json.loads(request.content) if request.content else None
        assert request_problems(operation, dict(request.url.params), body) == []
        self.seen.append((request.method, template, body))
        status, payload = self.answers[f"{request.method} {template}"].pop(0)
        if status < 400:
            assert response_problems(operation, status, _api(payload)) == []
        return httpx.Response(status, json=payload)


def _api(value: Any) -> Any:
    """Webhook payloads add `username` to users; the API's User has no such field."""
    if isinstance(value, list):
        return [_api(v) for v in value]
    if isinstance(value, dict):
        return {k: _api(v) for k, v in value.items() if not (k == "username" and "login" in value)}
    return value


def run(forgejo: Forgejo, call: Any) -> Any:
    async def scenario() -> Any:
        client = ForgejoClient(
            "https://forgejo.example.com", "t0k3n", transport=httpx.MockTransport(forgejo)
        )
        try:
            return await call(client)
        finally:
            await client.close()

    return asyncio.run(scenario())


def test_the_open_pr_from_the_task_branch_is_found_and_a_forks_is_not() -> None:
    fork = pull(999, "task/t1", head_repo="mallory/widgets")
    own = pull(14, "task/t1")
    forgejo = Forgejo({f"GET {PULLS}": [(200, [pull(3, "main"), fork, own])]})
    found: ForgePull = run(forgejo, lambda c: c.open_pull_from(REPO, "task/t1"))
    assert found.number == 14 and found.head_repo == REPO
    only_fork = Forgejo({f"GET {PULLS}": [(200, [fork])]})
    assert run(only_fork, lambda c: c.open_pull_from(REPO, "task/t1")) is None
    assert only_fork.seen[0][:2] == ("GET", PULLS)


def test_a_pr_is_created_from_the_task_branch_onto_the_default_branch() -> None:
    repo_info = copy.deepcopy(OPENED["repository"])
    repo_info["default_branch"] = "trunk"
    forgejo = Forgejo(
        {
            "GET /repos/{owner}/{repo}": [(200, repo_info)],
            f"POST {PULLS}": [(201, pull(15, "task/t1"))],
        }
    )

    async def call(client: ForgejoClient) -> ForgePull:
        base = await client.default_branch(REPO)
        return await client.create_pull(
            REPO, head="task/t1", base=base, title="x" * 400, body="Closes #12"
        )

    made = run(forgejo, call)
    assert made.number == 15
    posted = forgejo.seen[-1][2]
    assert posted["head"] == "task/t1" and posted["base"] == "trunk"
    assert len(posted["title"]) == 255 and posted["body"] == "Closes #12"


def test_a_pr_that_exists_already_is_found_not_made_twice() -> None:
    forgejo = Forgejo(
        {
            f"POST {PULLS}": [(409, {"message": "pull request already exists for these targets"})],
            f"GET {PULLS}": [(200, [pull(16, "task/t1")])],
        }
    )
    made = run(
        forgejo, lambda c: c.create_pull(REPO, head="task/t1", base="main", title="t", body="")
    )
    assert made.number == 16
    assert [(m, t) for m, t, _ in forgejo.seen] == [("POST", PULLS), ("GET", PULLS)]


@pytest.mark.parametrize(
    ("status", "message"),
    [(404, "The target couldn't be found."), (403, "token does not have write:repository")],
)
def test_a_pr_forgejo_refuses_is_a_refusal_not_an_outage(status: int, message: str) -> None:
    forgejo = Forgejo({f"POST {PULLS}": [(status, {"message": message})]})
    with pytest.raises(PullRequestRefused, match=f"HTTP {status}: {message}"):
        run(forgejo, lambda c: c.create_pull(REPO, head="task/t1", base="main", title="t", body=""))
