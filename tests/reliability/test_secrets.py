"""Secrets never leave the server: not in replies, error messages, its log or its database.

A server runs with distinctive secrets (admin token, pull token, Forgejo token
and webhook secret; each agent gets its own registry token) against a stand-in
Forgejo, through a full lifecycle with refusals, failures and a Forgejo outage.
Then every byte we got back, the server's log, the CLI's output and the SQLite
files are searched for each secret.
"""

import hashlib
import hmac
import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.server import ServerProcess
from tests.paths import WEBHOOKS

ADMIN = "ADMIN-sekrit-0a1b2c3d4e5f"
PULL = "PULL-sekrit-6a7b8c9d0e1f"
FORGE_TOKEN = "FORGE-sekrit-2f3e4d5c6b7a"
HOOK_SECRET = "HOOK-sekrit-8b9a0f1e2d3c"
FIXTURES = WEBHOOKS


class SecretServer(ServerProcess):
    def write_config(self) -> None:
        super().write_config()
        text = self.config_path.read_text()
        lines = [
            f'admin_token = "{ADMIN}"' if line.startswith("admin_token") else line
            for line in text.splitlines()
        ]
        self.config_path.write_text("\n".join(lines) + "\n")


class FakeForge(ThreadingHTTPServer):
    """Answers permission checks (write), fails everything else with 500; records auth."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ForgeHandler)
        self.auth_seen: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ForgeHandler(BaseHTTPRequestHandler):
    server: FakeForge

    def _answer(self) -> None:
        self.server.auth_seen.append(self.headers.get("Authorization", ""))
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        if self.path.endswith("/permission"):
            status, body = 200, {"permission": "write"}
        else:
            status, body = 500, {"message": "forge is down"}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = _answer  # noqa: N815 -- http.server's naming

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def forge() -> Iterator[FakeForge]:
    server = FakeForge()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _signed(name: str, secret: str) -> tuple[bytes, dict[str, str]]:
    manifest = {
        d["file"]: d for d in json.loads((FIXTURES / "manifest.json").read_text())["deliveries"]
    }
    body = (FIXTURES / name).read_bytes().replace(b'"name": "task"', b'"name": "agent:code:py"')
    headers = dict(manifest[name]["headers"])
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    for key in ("X-Forgejo-Signature", "X-Gitea-Signature", "X-Gogs-Signature"):
        headers[key] = signature
    return body, headers


def test_no_secret_appears_in_replies_errors_logs_or_the_database(
    tmp_path: Path, forge: FakeForge
) -> None:
    server = SecretServer(
        tmp_path,
        orchestrator={"http_pull_token": PULL},
        forgejo={"url": forge.url, "token": FORGE_TOKEN, "webhook_secret": HOOK_SECRET},
    ).start()
    seen: list[bytes] = []  # every reply: status line, headers and body

    def keep(reply: httpx.Response) -> None:
        reply.read()
        head = f"{reply.status_code} {reply.reason_phrase}\n{reply.headers}\n".encode()
        content = reply.content
        if reply.request.url.path.endswith("/register") and reply.status_code == 200:
            # The one place a registry token is meant to be: its owner's registration.
            given = reply.json()["registry_token"]
            content = content.replace(given.encode(), b"<issued token>", 1)
        seen.append(head + content)

    def client(token: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(
            base_url=server.url, headers=headers, timeout=60, event_hooks={"response": [keep]}
        )

    agent_tokens: list[str] = []
    try:
        with client(ADMIN) as admin, client(PULL) as puller, client(None) as anon:
            reg = puller.post(
                "/api/v1/agents/register",
                json={"agent_id": "sec-1", "agent_type": "x", "capabilities": ["code:py"]},
            ).json()
            agent_tokens.append(reg["registry_token"])
            reg2 = puller.post(
                "/api/v1/agents/register", json={"agent_id": "sec-2", "agent_type": "x"}
            ).json()
            agent_tokens.append(reg2["registry_token"])
            # Re-registering rotates or keeps the token: either way it is a secret too.
            again = puller.post(
                "/api/v1/agents/register",
                json={"agent_id": "sec-1", "agent_type": "x", "capabilities": ["code:py"]},
            ).json()
            agent_tokens.append(again["registry_token"])
            own = client(again["registry_token"])

            # A webhook makes a task (the permission check uses the Forgejo token).
            body, headers = _signed("issues_label_updated.json", HOOK_SECRET)
            made = anon.post("/api/v1/webhooks/forgejo", content=body, headers=headers)
            assert made.status_code == 200, made.text
            hooked = made.json()["task_id"]
            _, forged = _signed("issues_label_updated.json", "wrong-" + HOOK_SECRET)
            anon.post("/api/v1/webhooks/forgejo", content=body, headers=forged)
            anon.post("/api/v1/webhooks/forgejo", content=body, headers={})

            plain = admin.post(
                "/api/v1/tasks",
                json={"title": "plain", "prompt": "p", "required_capabilities": ["code:py"]},
            ).json()["task_id"]
            for _ in range(2):
                got = own.post("/api/v1/tasks/dequeue", json={"agent_id": "sec-1"}).json()
                task_id, lease = got["task_id"], got["lease"]
                base = {"agent_id": "sec-1", "lease": lease}
                own.post(f"/api/v1/tasks/{task_id}/status", json={**base, "state": "running"})
                own.post(f"/api/v1/tasks/{task_id}/logs", json={**base, "offset": 0, "data": "out"})
                own.post("/api/v1/agents/heartbeat", json={"agent_id": "sec-1"})
                if task_id == hooked:
                    # A PR receipt: validating it needs Forgejo, which is down (500).
                    receipt = {
                        **base,
                        "status": "completed",
                        "artifacts": [
                            {"type": "pr", "url": "https://forgejo.example.com/acme/w/pulls/13"}
                        ],
                    }
                    own.post(f"/api/v1/tasks/{task_id}/complete", json=receipt)
                else:
                    own.post(f"/api/v1/tasks/{task_id}/status", json={**base, "state": "failed"})
                # A stale lease, another agent's token, and the wrong kinds of token.
                own.post(
                    f"/api/v1/tasks/{task_id}/complete",
                    json={**base, "lease": "old", "status": "completed"},
                )
            with client(agent_tokens[1]) as other:
                other.post("/api/v1/agents/heartbeat", json={"agent_id": "sec-1"})
                other.post("/api/v1/tasks/dequeue", json={"agent_id": "sec-1"})
            for token in (PULL, agent_tokens[-1], ADMIN[:-1], ADMIN + "x", "Bearer " + ADMIN):
                with client(token) as wrong:
                    wrong.post("/api/v1/tasks", json={"title": "t", "prompt": "p"})
                    wrong.post(f"/api/v1/tasks/{plain}/cancel")
            for token in (ADMIN, PULL[:-1], FORGE_TOKEN, HOOK_SECRET):
                with client(token) as wrong:
                    wrong.post("/api/v1/agents/register", json={"agent_type": "x"})
                    wrong.post("/api/v1/agents/heartbeat", json={"agent_id": "sec-1"})
            admin.post(f"/api/v1/tasks/{plain}/retry")
            admin.post(f"/api/v1/tasks/{plain}/cancel")
            admin.post("/api/v1/tasks", content=b"{broken", headers={"content-type": "x"})
            for path in (
                "/",
                "/ui/agents",
                "/ui/tasks",
                f"/tasks/{hooked}",
                f"/ui/tasks/{hooked}/detail",
                "/metrics",
                "/openapi.json",
                "/healthz",
                "/api/v1/agents",
                "/api/v1/tasks",
                f"/api/v1/tasks/{hooked}",
                f"/api/v1/tasks/{hooked}/events",
                f"/api/v1/tasks/{plain}/events",
                f"/api/v1/tasks/{hooked}/logs",
            ):
                anon.get(path)
            own.post("/api/v1/agents/deregister", json={"agent_id": "sec-1"})
            own.close()
    finally:
        server.stop()
    cli_output = []
    for args in (("config", "check"), ("db", "rebuild", "--check")):
        done = server.cli(*args, "--config", str(server.config_path))
        cli_output.append((done.stdout + done.stderr).encode())

    assert f"token {FORGE_TOKEN}" in forge.auth_seen, "the Forgejo token was never used"
    statuses = {int(s[:3]) for s in seen}
    assert {200, 201, 401, 409} <= statuses, statuses
    secrets = [ADMIN, PULL, FORGE_TOKEN, HOOK_SECRET, *set(agent_tokens)]
    places = {
        "API replies": b"\n".join(seen),
        "server log": server.log_path.read_bytes(),
        "CLI output": b"\n".join(cli_output),
        "database": b"".join(
            p.read_bytes() for p in server.workdir.glob("fleet.db*") if p.is_file()
        ),
    }
    leaks = [
        f"{secret[:10]}... in {where}"
        for secret in secrets
        for where, data in places.items()
        if secret.encode() in data
    ]
    print(
        f"secrets: {len(secrets)} secrets, {len(seen)} replies, "
        f"{len(places['server log'])} log bytes searched",
        file=sys.stderr,
    )
    assert leaks == []
    assert len(seen) > 50
