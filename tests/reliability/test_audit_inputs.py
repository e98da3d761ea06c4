"""The outside audit's input findings, replayed as the attacks they were (issue 15).

5 and 12: an empty secret, or a misspelt secret's key, started an open server;
6: a non-ASCII webhook signature and an issue number of 10^30 gave 500;
7: a receipt with 1e999 was stored, and `db rebuild --check` then failed;
9: status messages and metadata of any size became events, and the events API
   and the dashboard returned every event at once.

Each runs against a real `agent-fleet serve` (or the real CLI).
"""

import hashlib
import hmac
import http.client
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import create, dequeue, register, task
from tests.e2e.server import ADMIN_TOKEN, PULL_TOKEN, ServerProcess, free_port
from tests.paths import WEBHOOKS
from tests.reliability.support import rebuild_agrees

WEBHOOK_SECRET = "audit-webhook-secret-0b9e"


@pytest.fixture
def hooked(tmp_path: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path, forgejo={"webhook_secret": WEBHOOK_SECRET}).start()
    yield server
    server.stop()


def _agent_cli(workdir: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agent_fleet", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=workdir,
        env={k: v for k, v in os.environ.items() if not k.startswith("AGENT_FLEET_")},
    )


# --- 5 and 12: secrets that turn auth off --------------------------------------------------


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ('[server]\nadmin_token = ""\n', "server.admin_token: an empty secret"),
        ('[orchestrator]\nhttp_pull_token = "   "\n', "orchestrator.http_pull_token: an empty"),
        (
            '[orchestrator]\nhttp_pul_token = "pull-token-0123456789"\n',
            "orchestrator.http_pul_token: unknown key (did you mean 'http_pull_token'?)",
        ),
        ('[server]\nbnd = "0.0.0.0"\n', "server.bnd: unknown key (did you mean 'bind'?)"),
    ],
)
def test_a_config_that_would_leave_the_server_open_is_refused(
    tmp_path: Path, text: str, named: str
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(text)
    checked = _agent_cli(tmp_path, "config", "check", "--config", str(config))
    assert checked.returncode == 1, checked.stdout
    assert named in checked.stderr and "OK" not in checked.stdout
    port = free_port()
    served = _agent_cli(tmp_path, "serve", "--config", str(config), "--port", str(port))
    assert served.returncode == 1 and named in served.stderr, served.stderr
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)


# --- 6: hostile webhook inputs -------------------------------------------------------------


def _fixture(name: str) -> tuple[bytes, dict[str, str]]:
    """A real delivery's body (with an agent label) and the headers Forgejo sends with it."""
    manifest = json.loads((WEBHOOKS / "manifest.json").read_text())["deliveries"]
    headers = next(d["headers"] for d in manifest if d["file"] == name)
    body = (WEBHOOKS / name).read_bytes().replace(b'"name": "task"', b'"name": "agent:code:py"')
    return body, dict(headers)


def _sign(body: bytes) -> str:
    return hmac.new(WEBHOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()


def _post_raw(server: ServerProcess, body: bytes, headers: dict[str, bytes]) -> tuple[int, bytes]:
    """A delivery sent byte for byte: header values may be any bytes (httpx refuses that)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.putrequest("POST", "/api/v1/webhooks/forgejo")
        for key, value in {**headers, "Content-Length": str(len(body)).encode()}.items():
            conn.putheader(key, value)
        conn.endheaders(body)
        reply = conn.getresponse()
        return reply.status, reply.read()
    finally:
        conn.close()


def _only(headers: dict[str, str], *keep: str) -> dict[str, bytes]:
    """The delivery's headers without any signature, plus `keep`."""
    kept = {
        k: v.encode()
        for k, v in headers.items()
        if "signature" not in k.lower() and k.lower() != "content-type"
    }
    return {**kept, "Content-Type": b"application/json", **{k: b"" for k in keep}}


HOSTILE_SIGNATURES = [
    "é".encode() * 32,
    b"\xff" * 64,
    b"sha256=" + "ü".encode() * 32,
    b"sha256=",
    b"   ",
    b"0" * 10_000,
    b"sha256=" + b"g" * 64,
]


def test_any_signature_bytes_are_a_401_never_a_500(hooked: ServerProcess) -> None:
    body, headers = _fixture("issues_label_updated.json")
    for signature in HOSTILE_SIGNATURES:
        for header in ("X-Forgejo-Signature", "X-Gitea-Signature", "X-Hub-Signature-256"):
            status, reply = _post_raw(hooked, body, {**_only(headers), header: signature})
            assert status == 401, (header, signature[:20], reply)
            assert json.loads(reply)["code"] == "unauthorized"
    assert httpx.get(f"{hooked.url}/api/v1/tasks", timeout=10).json()["tasks"] == []


def test_x_hub_signature_256_alone_is_enough(hooked: ServerProcess) -> None:
    """Issue 18: a delivery signed only as `X-Hub-Signature-256: sha256=<hex>`."""
    body, headers = _fixture("issues_label_updated.json")
    status, reply = _post_raw(
        hooked, body, {**_only(headers), "X-Hub-Signature-256": f"sha256={_sign(body)}".encode()}
    )
    assert status == 200 and json.loads(reply)["status"] == "created", reply
    status, _ = _post_raw(
        hooked,
        body + b" ",
        {**_only(headers), "X-Hub-Signature-256": f"sha256={_sign(body)}".encode()},
    )
    assert status == 401


def test_absurd_numbers_in_a_signed_payload_are_422_and_store_nothing(
    hooked: ServerProcess,
) -> None:
    for name, where in (
        ("issues_label_updated.json", "issue"),
        ("pull_request_closed_merged.json", "pull_request"),
    ):
        for number in (10**30, 2**31, 0, -1, 1e300):
            body, headers = _fixture(name)
            payload = json.loads(body)
            payload[where]["number"] = number
            body = json.dumps(payload).encode()
            signed = {**_only(headers), "X-Forgejo-Signature": _sign(body).encode()}
            status, reply = _post_raw(hooked, body, signed)
            assert status == 422, (name, number, reply)
            assert json.loads(reply)["code"] == "invalid_input"
    assert httpx.get(f"{hooked.url}/api/v1/tasks", timeout=10).json()["tasks"] == []


def test_deeply_nested_signed_payloads_are_4xx(hooked: ServerProcess) -> None:
    _, headers = _fixture("issues_label_updated.json")
    for depth in (100, 5_000, 200_000):
        deep = b'{"action": "label_updated", "x": ' + b"[" * depth + b"]" * depth + b"}"
        signed = {**_only(headers), "X-Forgejo-Signature": _sign(deep).encode()}
        status, reply = _post_raw(hooked, deep, signed)
        assert 400 <= status < 500, (depth, status, reply[:200])
    assert httpx.get(f"{hooked.url}/healthz", timeout=10).status_code == 200


# --- 7: non-finite numbers -----------------------------------------------------------------


def _held_task(admin: httpx.Client, puller: httpx.Client, agent: str) -> tuple[str, str]:
    create(admin, f"task for {agent}", [agent])
    register(puller, agent, [agent])
    got = dequeue(puller, agent)
    assert got is not None
    return got


NON_FINITE_RECEIPT_FIELDS = [
    b'"duration_seconds": 1e999',
    b'"duration_seconds": Infinity',
    b'"duration_seconds": NaN',
    b'"usage": {"tokens": 5, "cost_usd": 1e999}',
    b'"usage": {"tokens": 5, "cost_usd": -Infinity}',
    b'"usage": {"tokens": 1e999}',
    b'"usage": {"tokens": 1000000000000000000000000000000}',
]


def test_a_receipt_with_a_non_finite_number_is_refused(
    server: ServerProcess, admin: httpx.Client, puller: httpx.Client
) -> None:
    task_id, lease = _held_task(admin, puller, "inf")
    for raw in NON_FINITE_RECEIPT_FIELDS:
        body = (
            b'{"agent_id": "inf", "lease": "' + lease.encode() + b'", "status": "completed", '
            b'"summary": "done", ' + raw + b"}"
        )
        reply = puller.post(
            f"/api/v1/tasks/{task_id}/complete",
            content=body,
            headers={"content-type": "application/json"},
        )
        assert reply.status_code == 422, (raw, reply.text)
        assert task(admin, task_id)["state"] == "assigned"
    server.stop()
    rebuild_agrees(server)


def test_registration_metadata_with_a_non_finite_number_is_refused(
    server: ServerProcess, puller: httpx.Client
) -> None:
    for raw in (b"Infinity", b"-1e999", b"NaN", b'[1, {"deep": 1e999}]'):
        body = b'{"agent_id": "meta", "agent_type": "x", "metadata": {"score": ' + raw + b"}}"
        reply = puller.post(
            "/api/v1/agents/register", content=body, headers={"content-type": "application/json"}
        )
        assert reply.status_code == 422, (raw, reply.text)
    assert puller.get("/api/v1/agents").json()["agents"] == []
    server.stop()
    rebuild_agrees(server)


# --- 9: size caps and paging ---------------------------------------------------------------


def test_oversized_event_text_is_refused_and_stores_nothing(
    admin: httpx.Client, puller: httpx.Client
) -> None:
    """The audit added 19.9 MB of events with 40 status messages."""
    task_id, lease = _held_task(admin, puller, "big")
    base = {"agent_id": "big", "lease": lease}
    huge = "x" * 500_000
    before = admin.get(f"/api/v1/tasks/{task_id}/events").json()["events"]
    refused = [
        puller.post(
            f"/api/v1/tasks/{task_id}/status", json={**base, "state": "running", "message": huge}
        ),
        puller.post(
            f"/api/v1/tasks/{task_id}/status", json={**base, "state": "failed", "message": huge}
        ),
        puller.post(
            f"/api/v1/tasks/{task_id}/complete",
            json={**base, "status": "completed", "summary": huge},
        ),
        puller.post(
            f"/api/v1/tasks/{task_id}/complete",
            json={**base, "status": "failed", "summary": "s", "error": "é" * 40_000},
        ),
        puller.post(
            "/api/v1/agents/register",
            json={"agent_id": "big2", "agent_type": "x", "metadata": {"blob": "m" * 20_000}},
        ),
    ]
    for reply in refused:
        assert reply.status_code == 422, reply.text
        assert "server.max_" in reply.json()["error"], reply.json()
    assert admin.get(f"/api/v1/tasks/{task_id}/events").json()["events"] == before
    assert task(admin, task_id)["state"] == "assigned"
    # Up to the cap is fine.
    fits = puller.post(
        f"/api/v1/tasks/{task_id}/status",
        json={**base, "state": "running", "message": "y" * 65_536},
    )
    assert fits.status_code == 200, fits.text


def test_the_text_caps_are_configurable(tmp_path: Path) -> None:
    server = ServerProcess(
        tmp_path, server={"max_event_text_bytes": 16_384, "max_metadata_bytes": 300}
    ).start()
    try:
        auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        pull = {"Authorization": f"Bearer {PULL_TOKEN}"}
        with (
            httpx.Client(base_url=server.url, headers=auth, timeout=30) as admin,
            httpx.Client(base_url=server.url, headers=pull, timeout=30) as puller,
        ):
            task_id, lease = _held_task(admin, puller, "capped")
            base = {"agent_id": "capped", "lease": lease, "state": "running"}
            url = f"/api/v1/tasks/{task_id}/status"
            assert puller.post(url, json={**base, "message": "a" * 16_384}).status_code == 200
            too_long = puller.post(url, json={**base, "message": "é" * 8_193})
            assert too_long.status_code == 422
            assert "limit is 16384 bytes (server.max_event_text_bytes)" in too_long.json()["error"]
            meta = {"agent_id": "m", "agent_type": "x", "metadata": {"k": "v" * 400}}
            assert puller.post("/api/v1/agents/register", json=meta).status_code == 422
    finally:
        server.stop()


@pytest.fixture
def patient(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server that does not give up on a silent agent while a test reports many statuses."""
    server = ServerProcess(tmp_path, orchestrator={"heartbeat_interval_secs": 600}).start()
    yield server
    server.stop()


@pytest.fixture
def roles(patient: ServerProcess) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    with (
        httpx.Client(
            base_url=patient.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
        ) as admin,
        httpx.Client(
            base_url=patient.url, headers={"Authorization": f"Bearer {PULL_TOKEN}"}, timeout=30
        ) as puller,
    ):
        yield admin, puller


def _status_events(admin: httpx.Client, puller: httpx.Client, count: int) -> str:
    task_id, lease = _held_task(admin, puller, "chatty")
    for n in range(count):
        reply = puller.post(
            f"/api/v1/tasks/{task_id}/status",
            json={"agent_id": "chatty", "lease": lease, "state": "running", "message": f"m{n}"},
        )
        assert reply.status_code == 200, reply.text
    return task_id


def test_the_events_api_pages_through_a_long_history(
    patient: ServerProcess, roles: tuple[httpx.Client, httpx.Client]
) -> None:
    admin, puller = roles
    task_id = _status_events(admin, puller, 250)
    url = f"/api/v1/tasks/{task_id}/events"
    first = admin.get(url).json()
    assert len(first["events"]) == 100 and first["next_cursor"]
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 70, **({"cursor": cursor} if cursor else {})}
        page = admin.get(url, params=params).json()
        assert len(page["events"]) <= 70
        seen += page["events"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    versions = [e["version"] for e in seen]
    assert versions == list(range(1, len(versions) + 1)), "every event once, in order"
    assert len(versions) >= 252 and pages == -(-len(versions) // 70)
    for bad in ({"limit": 0}, {"limit": 1001}, {"cursor": "abc"}, {"cursor": "1" * 30}):
        assert admin.get(url, params=bad).status_code == 422, bad
    # `agent-fleet tasks show` reads every page.
    shown = patient.cli("tasks", "show", task_id, "--server", patient.url, "--json")
    assert shown.returncode == 0, shown.stderr
    assert len(json.loads(shown.stdout)["events"]) == len(versions)


def test_the_dashboard_shows_a_page_of_events_with_links_to_the_rest(
    roles: tuple[httpx.Client, httpx.Client],
) -> None:
    admin, puller = roles
    task_id = _status_events(admin, puller, 120)
    fragment = admin.get(f"/ui/tasks/{task_id}/detail").text
    rows = fragment.count('<tr><td class="mono">')
    assert rows == 50
    assert "?before=" in fragment and "m119" in fragment and "m0<" not in fragment
    oldest = admin.get(f"/ui/tasks/{task_id}/detail", params={"before": 10}).text
    assert oldest.count('<tr><td class="mono">') == 9
    assert "newest" in oldest
    page = admin.get(f"/tasks/{task_id}", params={"before": 10}).text
    assert "/detail?before=10" in page
