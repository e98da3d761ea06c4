"""Hostile input against a real server: generated requests, odd bodies, odd ids, markup.

Every refusal must be a 4xx with the `{"error", "code"}` shape; nothing may
answer 5xx; the server must stay up and its event log consistent afterwards.
The counts of requests tried are printed (`-s`) and recorded as properties.
"""

import contextlib
import hashlib
import hmac
import http.client
import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import markupsafe
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance

from tests.e2e.helpers import create, dequeue, register, task
from tests.e2e.server import ADMIN_TOKEN, PULL_TOKEN, ServerProcess
from tests.paths import WEBHOOKS
from tests.reliability.support import audit, rebuild_agrees

SOAK = os.environ.get("AGENT_FLEET_SOAK") == "1"
EXAMPLES = 200 if SOAK else 20  # per operation and generation mode
WEBHOOK_SECRET = "hostile-webhook-secret-5d1e"
FIXTURES = WEBHOOKS
Record = Callable[[str, object], None]

#: Agent-side routes take the pull token; the rest of the writes take the admin token.
AGENT_ROUTES = ("/agents/", "/dequeue", "/status", "/complete", "/logs", "/receipts")


def token_for(path: str) -> str:
    return PULL_TOKEN if any(part in path for part in AGENT_ROUTES) else ADMIN_TOKEN


@pytest.fixture
def hostile_server(tmp_path: Path) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path, forgejo={"webhook_secret": WEBHOOK_SECRET}) as proc:
        yield proc


@pytest.fixture
def admin_h(hostile_server: ServerProcess) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with httpx.Client(base_url=hostile_server.url, headers=headers, timeout=30) as client:
        yield client


@pytest.fixture
def puller_h(hostile_server: ServerProcess) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {PULL_TOKEN}"}
    with httpx.Client(base_url=hostile_server.url, headers=headers, timeout=30) as client:
        yield client


def is_clean_refusal(reply: httpx.Response) -> bool:
    """A 4xx whose body is exactly `{"error": str, "code": str}`."""
    if not 400 <= reply.status_code < 500:
        return False
    try:
        body = reply.json()
    except ValueError:
        return False
    return (
        isinstance(body, dict)
        and set(body) == {"error", "code"}
        and all(isinstance(v, str) for v in body.values())
        and "Traceback" not in body["error"]
    )


def finish(server: ServerProcess) -> None:
    """The server survived: it is still healthy, then its log and projections agree."""
    assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
    server.stop()
    assert audit(server.db_path).problems == []
    rebuild_agrees(server)


# --- generated requests ----------------------------------------------------------------


def test_generated_requests_never_5xx_and_match_the_schema(
    hostile_server: ServerProcess, record_property: Record
) -> None:
    """Schemathesis: valid and invalid requests for every operation of /openapi.json."""
    schema = schemathesis.openapi.from_url(f"{hostile_server.url}/openapi.json")
    failures: list[str] = []
    refusals_misshapen: list[str] = []
    sent = 0
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                derandomize=not SOAK,
                suppress_health_check=list(HealthCheck),
                phases=[Phase.explicit, Phase.generate],
            )
            def exercise(case: schemathesis.Case) -> None:
                nonlocal sent
                sent += 1
                headers = {"Authorization": f"Bearer {token_for(case.path)}"}
                reply = case.call(headers=headers, timeout=30)
                try:
                    case.validate_response(
                        reply, checks=[not_a_server_error, response_schema_conformance]
                    )
                except (AssertionError, Exception, BaseExceptionGroup) as e:
                    failures.append(f"{case.method} {case.path}: {str(e)[:500]}")
                if 400 <= reply.status_code < 500 and not case.path.endswith("/logs"):
                    body = reply.json()
                    if set(body) != {"error", "code"}:
                        refusals_misshapen.append(f"{case.method} {case.path}: {reply.text[:200]}")

            # Unsatisfiable: no invalid request exists for an operation without inputs.
            with contextlib.suppress(Unsatisfiable):
                exercise()
    print(f"schemathesis: {sent} requests over {operations} operations")
    record_property("schemathesis_requests", sent)
    assert operations >= 15
    assert sent >= operations * EXAMPLES
    assert failures == []
    assert refusals_misshapen == []
    finish(hostile_server)


def _write_operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in ("post", "put", "patch", "delete")
    ]


def test_every_write_documents_its_refusals(admin_h: httpx.Client) -> None:
    spec = admin_h.get("/openapi.json").json()
    undocumented = [
        f"{method} {path}: {code}"
        for method, path, op in _write_operations(spec)
        for code in ("400", "401", "404")
        if code not in op["responses"]
    ]
    assert undocumented == []


def test_log_read_errors_are_documented_as_json(admin_h: httpx.Client) -> None:
    spec = admin_h.get("/openapi.json").json()
    responses = spec["paths"]["/api/v1/tasks/{task_id}/logs"]["get"]["responses"]
    wrong = {
        code: sorted(r.get("content", {}))
        for code, r in responses.items()
        if code.startswith("4") and "application/json" not in r.get("content", {})
    }
    assert wrong == {}
    reply = admin_h.get("/api/v1/tasks/nope/logs")
    assert reply.status_code == 404 and reply.headers["content-type"] == "application/json"


# --- bodies ------------------------------------------------------------------------------

WRITES = [
    "/api/v1/tasks",
    "/api/v1/agents/register",
    "/api/v1/agents/heartbeat",
    "/api/v1/agents/deregister",
    "/api/v1/tasks/dequeue",
    "/api/v1/receipts",
    "/api/v1/tasks/t-1/status",
    "/api/v1/tasks/t-1/complete",
    "/api/v1/tasks/t-1/logs",
    "/api/v1/tasks/t-1/assign",
]


def _nested(depth: int) -> bytes:
    inner = b'{"a":' * depth + b"1" + b"}" * depth
    return b'{"agent_type":"x","title":"t","prompt":"p","agent_id":"x","metadata":' + inner + b"}"


def test_oversized_deep_and_undecodable_bodies_are_refused_cleanly(
    hostile_server: ServerProcess, record_property: Record
) -> None:
    big = b'{"title": "t", "prompt": "' + b"x" * 1_100_000 + b'"}'

    def chunked() -> Iterator[bytes]:  # no Content-Length: the limit must count as it reads
        for start in range(0, len(big), 65536):
            yield big[start : start + 65536]

    bodies: list[tuple[str, bytes | None, str]] = []
    for path in WRITES:
        bodies += [
            (path, big, "413 declared"),
            (path, None, "413 chunked"),
            (path, b'{"title": "\xff\xfe", "prompt": "p", "agent_id": "\xc3\x28"}', "utf8"),
            (path, b"\xef\xbb\xbf{}", "bom"),
            (path, b'{"title": "t\x00", "prompt": "p\\u0000", "agent_type": "x\\u0000"}', "nul"),
            (path, b"[" * 100_000, "deep array"),
            (path, _nested(100_000), "deep object"),
            (path, _nested(3_000), "deep object"),
            (path, b'{"title": 1e999999, "prompt": "p"}', "huge number"),
            (path, b"", "empty"),
        ]
    wrong = []
    tried = 0
    with httpx.Client(base_url=hostile_server.url, timeout=30) as client:
        for path, body, label in bodies:
            headers = {
                "Authorization": f"Bearer {token_for(path)}",
                "content-type": "application/json",
            }
            content = body if body is not None else chunked()
            reply = client.post(path, content=content, headers=headers)
            tried += 1
            expected_413 = label.startswith("413")
            if (expected_413 and reply.status_code != 413) or not is_clean_refusal(reply):
                wrong.append((path, label, reply.status_code, reply.text[:200]))
        # Deep but parseable nesting inside a free-form field: stored or refused, never 5xx.
        for depth in (50, 200, 400, 900):
            reply = client.post(
                "/api/v1/agents/register",
                content=_nested(depth),
                headers={"Authorization": f"Bearer {PULL_TOKEN}", "content-type": "x"},
            )
            tried += 1
            if reply.status_code != 200 and not is_clean_refusal(reply):
                wrong.append(("register", f"metadata depth {depth}", reply.status_code, reply.text))
        listed = client.get("/api/v1/agents")
        assert listed.status_code == 200, listed.text[:300]
        assert client.get("/").status_code == 200
    print(f"malformed bodies: {tried} requests")
    record_property("malformed_body_requests", tried)
    assert wrong == []
    finish(hostile_server)


def test_an_oversized_chunked_body_is_413(admin_h: httpx.Client) -> None:
    def chunked() -> Iterator[bytes]:
        yield b'{"title": "t", "prompt": "'
        for _ in range(20):
            yield b"x" * 65536
        yield b'"}'

    reply = admin_h.post(
        "/api/v1/tasks", content=chunked(), headers={"content-type": "application/json"}
    )
    assert admin_h.get("/api/v1/tasks").json()["tasks"] == []
    assert reply.status_code == 413 and reply.json()["code"] == "payload_too_large"


# --- ids -----------------------------------------------------------------------------------

TRAVERSALS = [
    "../../etc/passwd",
    "..%2f..%2fetc%2fpasswd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "%2e%2e",
    "..",
    "%00",
    "t%00.json",
    "..%5c..%5cwindows",
    "%252e%252e%252f",
    "%c0%ae%c0%ae%2f",
    "task%0d%0aX-Injected:%201",
    "a" * 5000,
]
ID_ROUTES = [
    ("GET", "/api/v1/tasks/{}"),
    ("GET", "/api/v1/tasks/{}/events"),
    ("GET", "/api/v1/tasks/{}/logs"),
    ("GET", "/tasks/{}"),
    ("GET", "/ui/tasks/{}/detail"),
    ("POST", "/api/v1/tasks/{}/cancel"),
    ("POST", "/api/v1/tasks/{}/retry"),
    ("POST", "/api/v1/tasks/{}/assign"),
    ("POST", "/api/v1/tasks/{}/status"),
    ("POST", "/api/v1/tasks/{}/complete"),
    ("POST", "/api/v1/tasks/{}/logs"),
]


def _raw_request(
    server: ServerProcess, method: str, target: str, body: bytes | None, token: str
) -> tuple[int, str, str]:
    """Send the request target byte for byte (httpx would normalise `..` away)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        conn.request(method, target, body=body, headers=headers)
        reply = conn.getresponse()
        return (
            reply.status,
            reply.getheader("location") or "",
            reply.read().decode(errors="replace"),
        )
    finally:
        conn.close()


def test_path_traversal_in_ids_finds_nothing(
    hostile_server: ServerProcess, admin_h: httpx.Client, record_property: Record
) -> None:
    real = create(admin_h, "the only task", [])["task_id"]
    body = {"agent_id": "x", "state": "running", "status": "completed", "offset": 0, "data": "d"}
    wrong = []
    tried = 0
    for method, route in ID_ROUTES:
        for raw in TRAVERSALS:
            target = route.format(raw)
            payload = json.dumps(body).encode() if method == "POST" else None
            token = token_for(route)
            status, location, text = _raw_request(hostile_server, method, target, payload, token)
            tried += 1
            if status in (307, 308):  # a trailing-slash redirect: follow it once
                assert location.startswith((hostile_server.url, "/")), location
                path = location.removeprefix(hostile_server.url)
                status, _, text = _raw_request(hostile_server, method, path, payload, token)
                tried += 1
            leaked = "root:" in text or "[boot loader]" in text
            refused = status in (400, 404, 405, 413, 414, 422)
            clean = True
            if route.startswith("/api") and refused:
                body_json = json.loads(text)
                clean = set(body_json) == {"error", "code"}
            if leaked or not refused or not clean:
                wrong.append((method, route, raw[:40], status, text[:120]))
    print(f"traversal ids: {tried} requests")
    record_property("traversal_requests", tried)
    assert wrong == []
    assert task(admin_h, real)["state"] == "created"
    finish(hostile_server)


# --- text fields ---------------------------------------------------------------------------

INJECTIONS = [
    "'; DROP TABLE events; --",
    '" OR 1=1 --',
    "1); DELETE FROM tasks WHERE (1=1",
    "{{7*7}}{% raw %}${7*7}",
    "$(touch /tmp/agent-fleet-pwned)`id`",
    "${jndi:ldap://example.invalid/a}",
    "line\r\nX-Injected: yes",
    "\u202e\u0000\ufeffzero\u200bwidth",
    "%s%s%s%n",
    "<script>alert('t')</script>",
]


def test_injection_strings_are_stored_verbatim_or_refused(
    hostile_server: ServerProcess,
    admin_h: httpx.Client,
    puller_h: httpx.Client,
    record_property: Record,
) -> None:
    """Each string goes into every text field; it comes back byte for byte, or is refused."""
    tried = 0
    wrong: list[object] = []

    def check(reply: httpx.Response, what: str) -> bool:
        nonlocal tried
        tried += 1
        if reply.status_code < 300:
            return True
        if not is_clean_refusal(reply):
            wrong.append((what, reply.status_code, reply.text[:200]))
        return False

    for n, evil in enumerate(INJECTIONS):
        made = admin_h.post(
            "/api/v1/tasks",
            json={"title": evil, "prompt": evil, "required_capabilities": [f"inj{n}"]},
        )
        assert made.status_code == 201, made.text
        task_id = made.json()["task_id"]
        fetched = task(admin_h, task_id)
        if (fetched["title"], fetched["prompt"]) != (evil, evil):
            wrong.append(("title/prompt changed", evil, fetched["title"]))
        for field in ("required_capabilities", "repo"):
            value: Any = [evil] if field == "required_capabilities" else evil
            check(
                admin_h.post("/api/v1/tasks", json={"title": "t", "prompt": "p", field: value}),
                field,
            )
        agent = f"inj-agent-{n}"
        reg = puller_h.post(
            "/api/v1/agents/register",
            json={
                "agent_id": agent,
                "agent_type": "x",
                "hostname": evil,
                "capabilities": [f"inj{n}"],
                "metadata": {evil: evil},
            },
        )
        assert check(reg, "register hostname/metadata"), reg.text
        for field in ("agent_id", "agent_type"):
            check(
                puller_h.post("/api/v1/agents/register", json={"agent_type": "x", field: evil}),
                field,
            )
        check(
            puller_h.post(
                "/api/v1/agents/heartbeat", json={"agent_id": agent, "running_tasks": [evil]}
            ),
            "running_tasks",
        )
        got = dequeue(puller_h, agent)
        assert got is not None and got[0] == task_id
        lease = got[1]
        base = {"agent_id": agent, "lease": lease}
        status = puller_h.post(
            f"/api/v1/tasks/{task_id}/status", json={**base, "state": "running", "message": evil}
        )
        assert check(status, "status message"), status.text
        logged = puller_h.post(
            f"/api/v1/tasks/{task_id}/logs", json={**base, "offset": 0, "data": evil}
        )
        assert check(logged, "log data"), logged.text
        log_text = admin_h.get(f"/api/v1/tasks/{task_id}/logs").text
        if log_text != evil:
            wrong.append(("log changed", evil, log_text))
        done = puller_h.post(
            f"/api/v1/tasks/{task_id}/complete",
            json={
                **base,
                "status": "completed",
                "summary": evil,
                "error": evil,
                "artifacts": [{"type": "commit", "sha": "abc123", "branch": evil}],
            },
        )
        assert check(done, "receipt"), done.text
        receipt = task(admin_h, task_id)["receipt"]
        if receipt["summary"] != evil or receipt["artifacts"][0]["branch"] != evil:
            wrong.append(("receipt changed", evil, receipt))
        listed = admin_h.get("/api/v1/tasks", params={"repo": evil, "agent_id": evil})
        check(listed, "list filters")
        check(admin_h.get("/", params={"q": evil, "state": evil}), "dashboard search")
    print(f"injection strings: {tried} requests")
    record_property("injection_requests", tried)
    assert wrong == []
    # Nothing was executed or dropped: every table is still there and whole.
    assert not Path("/tmp/agent-fleet-pwned").exists()
    page = admin_h.get("/")
    assert page.status_code == 200 and ">49<" not in page.text
    finish(hostile_server)


# --- the dashboard -----------------------------------------------------------------------

XSS = '<script>alert("xss")</script><img src=x onerror=alert(1)>"\'&'


def test_markup_in_titles_and_receipts_is_escaped_on_the_dashboard(
    admin_h: httpx.Client, puller_h: httpx.Client, hostile_server: ServerProcess
) -> None:
    task_id = create(admin_h, XSS, [])["task_id"]
    admin_h.post("/api/v1/tasks", json={"title": "p", "prompt": XSS}).raise_for_status()
    puller_h.post(
        "/api/v1/agents/register",
        json={"agent_id": "xss", "agent_type": "x", "hostname": XSS, "max_concurrency": 5},
    ).raise_for_status()
    got = dequeue(puller_h, "xss")
    assert got is not None and got[0] == task_id
    base = {"agent_id": "xss", "lease": got[1]}
    puller_h.post(
        f"/api/v1/tasks/{task_id}/status", json={**base, "state": "running", "message": XSS}
    ).raise_for_status()
    puller_h.post(
        f"/api/v1/tasks/{task_id}/logs", json={**base, "offset": 0, "data": XSS}
    ).raise_for_status()
    puller_h.post(
        f"/api/v1/tasks/{task_id}/status", json={**base, "state": "failed", "message": XSS}
    ).raise_for_status()
    pages = {
        path: admin_h.get(path)
        for path in (
            "/",
            "/ui/tasks",
            "/ui/agents",
            f"/tasks/{task_id}",
            f"/ui/tasks/{task_id}/detail",
        )
    }
    for path, page in pages.items():
        assert page.status_code == 200, path
        assert "<script>alert" not in page.text and "<img src=x" not in page.text, path
    escaped = str(markupsafe.escape(XSS))
    for path in ("/", "/ui/tasks", "/ui/agents", f"/ui/tasks/{task_id}/detail"):
        assert escaped in pages[path].text, f"{path} does not show the escaped text"


def test_a_javascript_pr_url_never_becomes_a_link(
    admin_h: httpx.Client, puller_h: httpx.Client
) -> None:
    task_id = create(admin_h, "pr link", [])["task_id"]
    register(puller_h, "linker", [])
    got = dequeue(puller_h, "linker")
    assert got is not None
    evil = "javascript:alert(document.cookie)"
    reply = puller_h.post(
        f"/api/v1/tasks/{task_id}/complete",
        json={
            "agent_id": "linker",
            "lease": got[1],
            "status": "completed",
            "artifacts": [{"type": "pr", "url": evil}],
        },
    )
    if reply.status_code == 200:
        detail = admin_h.get(f"/ui/tasks/{task_id}/detail").text
        assert f'href="{evil}"' not in detail
    else:
        assert is_clean_refusal(reply)


# --- webhooks (beyond tests/e2e/test_webhooks.py) -------------------------------------------

AGENT_LABEL = {'"name": "task"': '"name": "agent:code:python"'}


def _signed(name: str, secret: str = WEBHOOK_SECRET) -> tuple[bytes, dict[str, str]]:
    manifest = {
        d["file"]: d for d in json.loads((FIXTURES / "manifest.json").read_text())["deliveries"]
    }
    body = (FIXTURES / name).read_bytes()
    for old, new in AGENT_LABEL.items():
        body = body.replace(old.encode(), new.encode())
    headers = dict(manifest[name]["headers"])
    signature = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    for key in ("X-Forgejo-Signature", "X-Gitea-Signature", "X-Gogs-Signature"):
        headers[key] = signature
    return body, headers


def test_webhook_replays_and_forgeries(
    hostile_server: ServerProcess, record_property: Record
) -> None:
    url = "/api/v1/webhooks/forgejo"
    body, headers = _signed("issues_label_updated.json")
    tried = 0
    with httpx.Client(base_url=hostile_server.url, timeout=30) as client:

        def post(content: bytes, hdrs: dict[str, str]) -> httpx.Response:
            nonlocal tried
            tried += 1
            return client.post(url, content=content, headers=hdrs)

        # Forgeries: a valid signature on another body, and broken signatures.
        tampered = body.replace(b'"number": 12', b'"number": 99')
        assert tampered != body
        sig = headers["X-Forgejo-Signature"]
        forged = [
            (tampered, headers),
            (
                body,
                {
                    **headers,
                    "X-Forgejo-Signature": "sha256=" + "0" * 64,
                    "X-Gitea-Signature": "0" * 64,
                },
            ),
            (body, {**headers, "X-Forgejo-Signature": sig[:-1], "X-Gitea-Signature": sig[:-1]}),
            (body, {**headers, "X-Forgejo-Signature": sig.upper() + "00", "X-Gitea-Signature": ""}),
            (
                body,
                {
                    **headers,
                    "X-Forgejo-Signature": "sha1=" + sig,
                    "X-Gitea-Signature": "md5=" + sig,
                },
            ),
            (body + b" ", headers),
            (body, {**headers, "X-Forgejo-Signature": "\u00e9" * 64, "X-Gitea-Signature": "x"}),
        ]
        for content, hdrs in forged:
            try:
                reply = post(content, hdrs)
            except UnicodeEncodeError:
                continue  # httpx will not send a non-ASCII header; nothing to test
            assert reply.status_code == 401 and is_clean_refusal(reply), reply.text
        assert client.get("/api/v1/tasks").json()["tasks"] == []

        # Replays: the same delivery ten times at once creates one task.
        replies: list[httpx.Response] = []

        def send() -> None:
            with httpx.Client(base_url=hostile_server.url, timeout=30) as own:
                replies.append(own.post(url, content=body, headers=headers))

        threads = [threading.Thread(target=send) for _ in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        tried += len(threads)
        statuses = sorted(r.json()["status"] for r in replies)
        assert statuses == ["created"] + ["duplicate"] * 9, statuses
        assert len(client.get("/api/v1/tasks").json()["tasks"]) == 1

    # ... and the delivery is still known after a kill -9 and restart.
    hostile_server.kill9()
    hostile_server.start()
    with httpx.Client(base_url=hostile_server.url, timeout=30) as client:
        again = client.post(url, content=body, headers=headers)
        tried += 1
        assert again.status_code == 202 and again.json()["status"] == "duplicate"
        assert len(client.get("/api/v1/tasks").json()["tasks"]) == 1
    print(f"webhook forgeries and replays: {tried} requests")
    record_property("webhook_requests", tried)
    finish(hostile_server)
