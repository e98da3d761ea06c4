"""Auth and every refusal DESIGN names: 401, 403, 404, 409, 413, 422, and no 5xx."""

import json

import httpx

from tests.e2e.helpers import create, dequeue, register, task
from tests.e2e.server import ServerProcess


def test_tokens_are_required(anonymous: httpx.Client, puller: httpx.Client) -> None:
    reg = anonymous.post("/api/v1/agents/register", json={"agent_type": "x", "capabilities": []})
    assert reg.status_code == 401 and reg.json()["code"] == "unauthorized"
    create_reply = anonymous.post("/api/v1/tasks", json={"title": "t", "prompt": "p"})
    assert create_reply.status_code == 401
    token = register(puller, "a1", [])
    with_own_token = anonymous.post(
        "/api/v1/agents/heartbeat",
        json={"agent_id": "a1"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert with_own_token.status_code == 200
    register(puller, "a2", [])
    as_other = anonymous.post(
        "/api/v1/agents/heartbeat",
        json={"agent_id": "a2"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert as_other.status_code == 401, "one agent's token must not act for another"
    wrong_admin = puller.post("/api/v1/tasks", json={"title": "t", "prompt": "p"})
    assert wrong_admin.status_code == 401
    assert anonymous.get("/api/v1/tasks").status_code == 200  # reads are open


def test_refusals_leave_the_task_unchanged(admin: httpx.Client, puller: httpx.Client) -> None:
    register(puller, "holder", [])
    register(puller, "other", [])
    task_id = create(admin, "t", [])["task_id"]
    _, lease = dequeue(puller, "holder") or ("", "")
    before = task(admin, task_id)

    not_mine = puller.post(
        f"/api/v1/tasks/{task_id}/status", json={"agent_id": "other", "state": "running"}
    )
    assert not_mine.status_code == 403 and not_mine.json()["code"] == "not_task_holder"
    stale = puller.post(
        f"/api/v1/tasks/{task_id}/complete",
        json={"agent_id": "holder", "lease": "old-lease", "status": "completed"},
    )
    assert stale.status_code == 409 and stale.json()["code"] == "stale_lease"
    retry_now = admin.post(f"/api/v1/tasks/{task_id}/retry")
    assert retry_now.status_code == 409 and "assigned" in retry_now.json()["error"]
    unknown = admin.get("/api/v1/tasks/does-not-exist")
    assert unknown.status_code == 404 and unknown.json()["code"] == "task_not_found"
    ghost = puller.post("/api/v1/agents/heartbeat", json={"agent_id": "ghost"})
    assert ghost.status_code == 404
    bad_state = puller.post(
        f"/api/v1/tasks/{task_id}/status",
        json={"agent_id": "holder", "lease": lease, "state": "completed"},
    )
    assert bad_state.status_code == 422 and bad_state.json()["code"] == "validation_error"
    assert task(admin, task_id) == before


MALFORMED: list[tuple[str, bytes]] = [
    ("/api/v1/tasks", b"{not json"),
    ("/api/v1/tasks", b'{"title": "", "prompt": "p"}'),
    ("/api/v1/tasks", b'{"title": "t", "prompt": "p", "priority": 10000000000000000000000}'),
    ("/api/v1/tasks", b'{"title": "t", "prompt": "p", "required_capabilities": "code"}'),
    ("/api/v1/tasks", b'{"title": "t", "prompt": "p", "timeout_secs": -5}'),
    ("/api/v1/tasks", b'{"title": "t", "prompt": "p", "execution_mode": "teleport"}'),
    ("/api/v1/tasks", b'{"title": "\\ud800", "prompt": "p"}'),
    ("/api/v1/tasks", b'{"title": "t", "prompt": "p", "repo": "../../etc"}'),
    ("/api/v1/tasks", b"[" * 50_000 + b"]" * 50_000),
    ("/api/v1/tasks", b"\xff\xfe\xfd"),
    ("/api/v1/tasks", b"null"),
    ("/api/v1/agents/register", b'{"agent_type": "x", "max_concurrency": 0}'),
    ("/api/v1/agents/register", b'{"agent_type": "x", "agent_id": "../etc/passwd"}'),
    ("/api/v1/agents/register", b'{"agent_type": "x", "capabilities": [1, 2]}'),
    ("/api/v1/agents/heartbeat", b'{"agent_id": 5}'),
    ("/api/v1/tasks/dequeue", b'{"agent_id": "x", "wait_secs": 1e9}'),
    ("/api/v1/receipts", b'{"agent_id": "x", "status": "completed"}'),
    ("/api/v1/receipts", b'{"task_id": "t", "agent_id": "x", "status": "maybe"}'),
    (
        "/api/v1/receipts",
        b'{"task_id": "t", "agent_id": "x", "status": "completed", "artifacts": [{"type": "pr"}]}',
    ),
]


def test_malformed_input_is_a_clear_4xx_and_changes_nothing(
    server: ServerProcess, admin: httpx.Client
) -> None:
    headers = {"content-type": "application/json", "Authorization": admin.headers["Authorization"]}
    wrong = []
    for path, body in MALFORMED:
        reply = admin.post(path, content=body, headers=headers)
        if reply.status_code not in (400, 422) or set(reply.json()) != {"error", "code"}:
            wrong.append((path, body[:60], reply.status_code, reply.text[:200]))
    assert wrong == []
    assert admin.get("/api/v1/tasks").json()["tasks"] == []
    assert admin.get("/api/v1/agents").json()["agents"] == []


def test_oversized_body_is_413(admin: httpx.Client) -> None:
    huge = json.dumps({"title": "t", "prompt": "x" * 2_000_000})
    reply = admin.post("/api/v1/tasks", content=huge, headers={"content-type": "application/json"})
    assert reply.status_code == 413 and reply.json()["code"] == "payload_too_large"
    assert admin.get("/api/v1/tasks").json()["tasks"] == []


def test_openapi_is_published(anonymous: httpx.Client) -> None:
    spec = anonymous.get("/openapi.json").json()
    for path in (
        "/api/v1/agents/register",
        "/api/v1/agents/heartbeat",
        "/api/v1/tasks",
        "/api/v1/tasks/dequeue",
        "/api/v1/tasks/{task_id}/complete",
        "/api/v1/receipts",
        "/healthz",
    ):
        assert path in spec["paths"], path
    health = anonymous.get("/healthz").json()
    assert health["status"] == "ok" and health["store"] == "sqlite"
