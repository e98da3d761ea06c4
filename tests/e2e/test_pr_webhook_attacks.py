"""Issue 15, finding 1, as the attack over real HTTP: pull-request webhooks for branch
`task/<id>` that are not the task's PR — a fork's PR #999 opened and closed by someone
without write access, a PR merged in another repository — change nothing; the task's own
PR, opened by the server, still completes it."""

import copy
import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.forgejo import ForgejoStandIn
from tests.e2e.helpers import dequeue, register, task
from tests.e2e.server import ADMIN_TOKEN, PULL_TOKEN, ServerProcess
from tests.e2e.test_webhooks import FIXTURES, MANIFEST, SECRET, deliver

FORGE_TOKEN = "forgejo-api-token-a11ce"
REPO = "acme/widgets"


@pytest.fixture
def standin(tmp_path: Path) -> Iterator[ForgejoStandIn]:
    forge = ForgejoStandIn.start(FORGE_TOKEN, tmp_path / "standin.log")
    forge.set("permission", repo=REPO, user="carol", level="write")
    forge.set("permission", repo=REPO, user="mallory", level="read")
    forge.set("issue", repo=REPO, number=12, title="t", body="", labels=[], labelled_by="carol")
    yield forge
    report = forge.report()
    forge.stop()
    assert report["violations"] == []


def signed(
    client: httpx.Client, fixture: str, change: Callable[[dict[str, Any]], None], delivery: str
) -> httpx.Response:
    """A real delivery, changed as an attacker's would be, signed as Forgejo signs."""
    payload = json.loads((FIXTURES / fixture).read_bytes())
    change(payload)
    body = json.dumps(payload, indent=2).encode()
    headers = dict(MANIFEST[fixture]["headers"])
    signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    for key in ("X-Forgejo-Signature", "X-Gitea-Signature", "X-Gogs-Signature"):
        headers[key] = signature
    headers["X-Forgejo-Delivery"] = headers["X-Gitea-Delivery"] = delivery
    return client.post("/api/v1/webhooks/forgejo", content=body, headers=headers)


def from_fork(task_id: str) -> Callable[[dict[str, Any]], None]:
    """PR #999 from mallory/widgets' branch `task/<id>`: Forgejo sends the bare branch
    name as `head.label` for a fork, exactly as for a branch of the repo itself."""

    def change(payload: dict[str, Any]) -> None:
        pr = payload["pull_request"]
        pr["number"], pr["merged"] = 999, False
        pr["html_url"] = f"https://forgejo.example.com/{REPO}/pulls/999"
        pr["head"].update(ref=f"task/{task_id}", label=f"task/{task_id}")
        fork = copy.deepcopy(pr["head"]["repo"])
        fork.update(full_name="mallory/widgets", name="widgets", fork=True)
        fork["owner"]["login"] = "mallory"
        pr["head"]["repo"] = fork
        payload["sender"]["login"] = "mallory"

    return change


def in_other_repo(task_id: str) -> Callable[[dict[str, Any]], None]:
    def change(payload: dict[str, Any]) -> None:
        pr = payload["pull_request"]
        pr["head"].update(ref=f"task/{task_id}", label=f"task/{task_id}")
        for repo in (payload["repository"], pr["head"]["repo"], pr["base"]["repo"]):
            repo.update(full_name="acme/other", name="other")

    return change


def test_only_the_tasks_own_pr_moves_it(tmp_path: Path, standin: ForgejoStandIn) -> None:
    server = ServerProcess(
        tmp_path,
        forgejo={"url": standin.url, "token": FORGE_TOKEN, "webhook_secret": SECRET},
    ).start()
    admin_h, pull_h = (
        {"Authorization": f"Bearer {ADMIN_TOKEN}"},
        {"Authorization": f"Bearer {PULL_TOKEN}"},
    )
    try:
        with (
            httpx.Client(base_url=server.url, headers=admin_h, timeout=30) as admin,
            httpx.Client(base_url=server.url, headers=pull_h, timeout=30) as puller,
        ):
            label = {'"name": "task"': '"name": "agent:code"'}
            task_id = deliver(admin, "issues_label_updated.json", replace=label).json()["task_id"]
            register(puller, "a", ["code"])
            got = dequeue(puller, "a")
            assert got is not None
            branch = {"type": "branch", "name": f"task/{task_id}", "sha": "ab" * 20}
            done = puller.post(
                f"/api/v1/tasks/{task_id}/complete",
                json={
                    "agent_id": "a",
                    "lease": got[1],
                    "status": "completed",
                    "artifacts": [branch],
                },
            ).json()
            assert done["state"] == "review_pending" and done["pr"]["number"] == 13

            opened = signed(admin, "pull_request_opened.json", from_fork(task_id), "fork-1")
            closed = signed(
                admin, "pull_request_closed_unmerged.json", from_fork(task_id), "fork-2"
            )
            elsewhere = signed(
                admin, "pull_request_closed_merged.json", in_other_repo(task_id), "other-1"
            )
            for attack in (opened, closed, elsewhere):
                assert attack.status_code == 202, attack.text
                assert attack.json()["status"] == "ignored"
            assert "mallory/widgets" in opened.json()["reason"]
            assert "acme/other" in elsewhere.json()["reason"]
            after_attacks = task(admin, task_id)
            assert after_attacks["state"] == "review_pending"
            assert after_attacks["pr"]["number"] == 13

            merged = deliver(
                admin,
                "pull_request_closed_merged.json",
                replace={"task/12-empty-export": f"task/{task_id}"},
            )
            assert merged.json() == {"status": "pull request merged", "task_id": task_id}
            assert task(admin, task_id)["state"] == "completed"
    finally:
        server.stop()
    log = server.log_path.read_text()
    assert "webhook ignored" in log and "mallory/widgets" in log
