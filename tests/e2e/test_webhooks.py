"""Signed Forgejo deliveries against the real server: labels make tasks, PRs finish them."""

import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.helpers import dequeue, events, register, task
from tests.e2e.server import ADMIN_TOKEN, PULL_TOKEN, ServerProcess
from tests.paths import WEBHOOKS

FIXTURES = WEBHOOKS
MANIFEST = {
    d["file"]: d for d in json.loads((FIXTURES / "manifest.json").read_text())["deliveries"]
}
SECRET = "s3cr3t-webhook-key"


@pytest.fixture
def forge_server(tmp_path: Path) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path, forgejo={"webhook_secret": SECRET}) as proc:
        yield proc


def deliver(
    client: httpx.Client,
    name: str,
    *,
    replace: dict[str, str] | None = None,
    delivery: str | None = None,
    secret: str = SECRET,
) -> httpx.Response:
    """Send a fixture as Forgejo would: its real headers, re-signed when we change the body."""
    body = (FIXTURES / name).read_bytes()
    for old, new in (replace or {}).items():
        assert old.encode() in body, old
        body = body.replace(old.encode(), new.encode())
    headers = dict(MANIFEST[name]["headers"])
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    for key in ("X-Forgejo-Signature", "X-Gitea-Signature", "X-Gogs-Signature"):
        headers[key] = signature
    if delivery:
        headers["X-Forgejo-Delivery"] = headers["X-Gitea-Delivery"] = delivery
    return client.post("/api/v1/webhooks/forgejo", content=body, headers=headers)


AGENT_LABEL = {'"name": "task"': '"name": "agent:code:python"'}


def test_labels_make_route_and_cancel_a_task(forge_server: ServerProcess) -> None:
    with httpx.Client(base_url=forge_server.url, timeout=30) as client:
        plain = deliver(client, "issues_label_updated.json")
        assert plain.status_code == 202 and plain.json()["status"] == "ignored"
        made = deliver(client, "issues_label_updated.json", replace=AGENT_LABEL, delivery="d-1")
        assert made.status_code == 200 and made.json()["status"] == "created"
        task_id = made.json()["task_id"]
        created = task(client, task_id)
        assert created["required_capabilities"] == ["code:python"]
        assert created["source"]["kind"] == "forgejo" and created["source"]["issue_number"] == 12
        assert "```" in created["prompt"] and f"task/{task_id}" in created["prompt"]
        assert events(client, task_id) == ["task.created"]
        history = client.get(f"/api/v1/tasks/{task_id}/events").json()["events"]
        assert history[0]["actor"] == "webhook:d-1"

        again = deliver(client, "issues_label_updated.json", replace=AGENT_LABEL, delivery="d-1")
        assert again.status_code == 202 and again.json()["status"] == "duplicate"
        redelivered = deliver(
            client, "issues_label_updated.json", replace=AGENT_LABEL, delivery="d-2-redelivery"
        )
        assert redelivered.json()["status"] == "duplicate", "same content, new id: still a dup"

        rust = {'"name": "task"': '"name": "agent:code:rust"'}
        moved = deliver(client, "issues_label_updated.json", replace=rust, delivery="d-3")
        assert moved.json() == {"status": "rerouted", "task_id": task_id}
        assert task(client, task_id)["required_capabilities"] == ["code:rust"]

        cleared = deliver(client, "issues_label_cleared.json")
        assert cleared.json() == {"status": "cancelled", "task_id": task_id}
        assert task(client, task_id)["state"] == "cancelled"


def test_a_pull_request_moves_the_task_to_completed(forge_server: ServerProcess) -> None:
    admin_h = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with (
        httpx.Client(base_url=forge_server.url, timeout=30, headers=admin_h) as admin,
        httpx.Client(
            base_url=forge_server.url, timeout=30, headers={"Authorization": f"Bearer {PULL_TOKEN}"}
        ) as puller,
    ):
        task_id = deliver(admin, "issues_label_updated.json", replace=AGENT_LABEL).json()["task_id"]
        register(puller, "py", ["code:python"])
        got = dequeue(puller, "py")
        assert got is not None and got[0] == task_id
        pr_url = "https://forgejo.example.com/acme/widgets/pulls/13"
        receipt = puller.post(
            f"/api/v1/tasks/{task_id}/complete",
            json={
                "agent_id": "py",
                "lease": got[1],
                "status": "completed",
                "summary": "fixed",
                "artifacts": [{"type": "pr", "url": pr_url}],
            },
        )
        assert receipt.json()["state"] == "review_pending"
        branch = {"task/12-empty-export": f"task/{task_id}"}
        opened = deliver(admin, "pull_request_opened.json", replace=branch)
        assert opened.json()["task_id"] == task_id
        merged = deliver(admin, "pull_request_closed_merged.json", replace=branch)
        assert merged.json() == {"status": "pull request merged", "task_id": task_id}
        done = task(admin, task_id)
        assert done["state"] == "completed" and done["pr"]["state"] == "merged"
        assert events(admin, task_id)[-2:] == ["task.pr_updated", "task.completed"]


def test_a_pull_request_closed_unmerged_fails_without_retry(forge_server: ServerProcess) -> None:
    with httpx.Client(
        base_url=forge_server.url, timeout=30, headers={"Authorization": f"Bearer {PULL_TOKEN}"}
    ) as puller:
        task_id = deliver(puller, "issues_label_updated.json", replace=AGENT_LABEL).json()[
            "task_id"
        ]
        register(puller, "py", ["code:python"])
        got = dequeue(puller, "py")
        assert got is not None
        puller.post(
            f"/api/v1/tasks/{task_id}/complete",
            json={
                "agent_id": "py",
                "lease": got[1],
                "status": "completed",
                "artifacts": [
                    {"type": "pr", "url": "https://forgejo.example.com/acme/widgets/pulls/13"}
                ],
            },
        )
        closed = deliver(
            puller,
            "pull_request_closed_unmerged.json",
            replace={"task/12-empty-export": f"task/{task_id}"},
        )
        assert closed.json()["status"] == "pull request closed"
        final = task(puller, task_id)
        assert final["state"] == "failed" and final["failure"]["reason"] == "pr_closed"
        assert final["retry_at"] is None


def test_forged_unsigned_and_unknown_deliveries(
    forge_server: ServerProcess, tmp_path: Path
) -> None:
    with httpx.Client(base_url=forge_server.url, timeout=30) as client:
        forged = deliver(
            client, "issues_label_updated.json", replace=AGENT_LABEL, secret="not-the-secret"
        )
        assert forged.status_code == 401 and forged.json()["code"] == "unauthorized"
        unsigned = client.post(
            "/api/v1/webhooks/forgejo", content=b"{}", headers={"X-Forgejo-Event": "issues"}
        )
        assert unsigned.status_code == 401
        comment = deliver(client, "issue_comment_created.json")
        assert comment.status_code == 202 and comment.json()["status"] == "ignored"
        assert client.get("/api/v1/tasks").json()["tasks"] == []
        metrics = client.get("/metrics").text
        assert 'agent_fleet_webhook_deliveries_total{result="refused"} 2.0' in metrics
        assert 'agent_fleet_webhook_deliveries_total{result="ignored"} 1.0' in metrics


def test_without_a_secret_webhooks_are_refused(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        reply = deliver(client, "issues_label_updated.json", replace=AGENT_LABEL)
        assert reply.status_code == 401 and "webhook_secret" in reply.json()["error"]
