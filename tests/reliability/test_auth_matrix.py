"""Every write endpoint in the app's own OpenAPI refuses a missing or wrong token.

The list of writes comes from /openapi.json, so a new endpoint without a row
here fails the test until someone decides which token it takes. Bodies are
valid, so the refusal is the token's and not validation's.
"""

import hashlib

import httpx
import pytest

from tests.e2e.helpers import create, dequeue, register, task
from tests.e2e.server import ADMIN_TOKEN, PULL_TOKEN, ServerProcess

ADMIN, AGENT, WEBHOOK = "admin", "agent", "webhook"

#: (method, path template) → who may call it, and a valid body for it.
WRITES: dict[tuple[str, str], tuple[str, dict[str, object] | None]] = {
    ("POST", "/api/v1/tasks"): (ADMIN, {"title": "t", "prompt": "p"}),
    ("POST", "/api/v1/tasks/{task_id}/assign"): (ADMIN, {"agent_id": "holder"}),
    ("POST", "/api/v1/tasks/{task_id}/retry"): (ADMIN, None),
    ("POST", "/api/v1/tasks/{task_id}/cancel"): (ADMIN, None),
    ("POST", "/api/v1/agents/register"): (AGENT, {"agent_id": "holder", "agent_type": "x"}),
    ("POST", "/api/v1/agents/heartbeat"): (AGENT, {"agent_id": "holder"}),
    ("POST", "/api/v1/agents/deregister"): (AGENT, {"agent_id": "holder"}),
    ("POST", "/api/v1/tasks/dequeue"): (AGENT, {"agent_id": "holder"}),
    ("POST", "/api/v1/tasks/{task_id}/status"): (AGENT, {"agent_id": "holder", "state": "running"}),
    ("POST", "/api/v1/tasks/{task_id}/logs"): (
        AGENT,
        {"agent_id": "holder", "offset": 0, "data": "x"},
    ),
    ("POST", "/api/v1/tasks/{task_id}/complete"): (
        AGENT,
        {"agent_id": "holder", "status": "completed"},
    ),
    ("POST", "/api/v1/receipts"): (
        AGENT,
        {"task_id": "{task_id}", "agent_id": "holder", "status": "completed"},
    ),
    ("POST", "/api/v1/webhooks/forgejo"): (WEBHOOK, {"action": "opened"}),
}


def _writes(spec: dict[str, object]) -> set[tuple[str, str]]:
    paths = spec["paths"]
    assert isinstance(paths, dict)
    return {
        (method.upper(), path)
        for path, item in paths.items()
        for method in item
        if method in ("post", "put", "patch", "delete")
    }


def test_every_write_refuses_missing_and_wrong_tokens(
    server: ServerProcess, admin: httpx.Client, puller: httpx.Client, anonymous: httpx.Client
) -> None:
    holder_token = register(puller, "holder", [])
    task_id = create(admin, "guarded", [])["task_id"]
    assert dequeue(puller, "holder") is not None
    before = task(admin, task_id)
    writes = _writes(anonymous.get("/openapi.json").json())
    assert writes == set(WRITES), "a write endpoint without a row in WRITES (or a stale row)"

    fakes = {
        "none": None,
        "garbage": "not-a-token",
        "bare scheme": "",
        "basic auth": "",
        "admin prefix": ADMIN_TOKEN[:-1],
        "sha of admin": hashlib.sha256(ADMIN_TOKEN.encode()).hexdigest(),
    }
    wrong = []
    tried = 0
    for (method, template), (who, body) in sorted(WRITES.items()):
        path = template.format(task_id=task_id)
        if isinstance(body, dict) and body.get("task_id") == "{task_id}":
            body = {**body, "task_id": task_id}
        tokens = dict(fakes)
        if who == ADMIN:  # agent credentials are not operator credentials
            tokens |= {"pull token": PULL_TOKEN, "agent token": holder_token}
        if who == AGENT:  # nor the other way round
            tokens |= {"admin token": ADMIN_TOKEN}
        for label, token in tokens.items():
            headers = {} if token is None else {"Authorization": f"Bearer {token}"}
            if label == "bare scheme":
                headers = {"Authorization": "Bearer"}
            if label == "basic auth":
                headers = {"Authorization": f"Basic {ADMIN_TOKEN}"}
            reply = anonymous.request(method, path, json=body, headers=headers)
            tried += 1
            shaped = reply.headers.get("content-type", "").startswith("application/json") and set(
                reply.json()
            ) == {"error", "code"}
            if reply.status_code not in (401, 403) or not shaped:
                wrong.append((method, template, label, reply.status_code, reply.text[:120]))
    print(f"auth matrix: {len(WRITES)} write endpoints, {tried} refused requests")
    assert wrong == []
    assert task(admin, task_id) == before
    assert [a["agent_id"] for a in admin.get("/api/v1/agents").json()["agents"]] == ["holder"]


@pytest.mark.parametrize(
    ("step", "path", "extra"),
    [
        ("heartbeat", "/api/v1/agents/heartbeat", {}),
        ("deregister", "/api/v1/agents/deregister", {}),
        ("dequeue", "/api/v1/tasks/dequeue", {}),
        ("re-register", "/api/v1/agents/register", {"agent_type": "x"}),
        ("status", "/api/v1/tasks/{task_id}/status", {"state": "failed"}),
        ("logs", "/api/v1/tasks/{task_id}/logs", {"offset": 0, "data": "forged"}),
        ("complete", "/api/v1/tasks/{task_id}/complete", {"status": "completed"}),
        ("receipt", "/api/v1/receipts", {"status": "completed", "task_id": "{task_id}"}),
    ],
)
def test_an_agent_token_cannot_act_for_another_agent(
    server: ServerProcess,
    admin: httpx.Client,
    puller: httpx.Client,
    anonymous: httpx.Client,
    step: str,
    path: str,
    extra: dict[str, object],
) -> None:
    register(puller, "holder", [])
    intruder = register(puller, "intruder", [])
    task_id = create(admin, "held", [])["task_id"]
    got = dequeue(puller, "holder")
    assert got is not None
    lease = got[1]
    assert (
        puller.post(
            f"/api/v1/tasks/{task_id}/status",
            json={"agent_id": "holder", "lease": lease, "state": "running"},
        ).status_code
        == 200
    )
    before = task(admin, task_id)
    events_before = admin.get(f"/api/v1/tasks/{task_id}/events").json()
    as_intruder = {"Authorization": f"Bearer {intruder}"}
    body = {k: v.format(task_id=task_id) if isinstance(v, str) else v for k, v in extra.items()}

    # Even knowing the holder's lease, the intruder's token is not the holder's.
    impersonating = anonymous.post(
        path.format(task_id=task_id),
        json={**body, "agent_id": "holder", "lease": lease},
        headers=as_intruder,
    )
    assert impersonating.status_code == 401, impersonating.text
    assert impersonating.json()["code"] == "unauthorized"
    if "{task_id}" in path or "task_id" in body:
        # In its own name, on a task it does not hold: not this agent's task.
        own_name = anonymous.post(
            path.format(task_id=task_id),
            json={**body, "agent_id": "intruder", "lease": lease},
            headers=as_intruder,
        )
        assert own_name.status_code in (403, 409), own_name.text
    assert task(admin, task_id) == before
    assert admin.get(f"/api/v1/tasks/{task_id}/events").json() == events_before
    assert admin.get(f"/api/v1/tasks/{task_id}/logs").text == ""
    agents = {a["agent_id"]: a["status"] for a in admin.get("/api/v1/agents").json()["agents"]}
    assert agents["holder"] == "online", f"{step} changed the holder"
