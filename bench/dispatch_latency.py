"""Dispatch latency: task creation → a long-polling agent holds it, at about half load.

One `agent-fleet serve` (SQLite) with a `[forgejo] webhook_secret` and no
Forgejo URL/token: with no API configured, `WebhookService._may_trigger` lets
every sender through (labelling already needs write access in Forgejo), so no
permission call is made. 16 agents long-poll `POST /api/v1/tasks/dequeue`
(`wait_secs` 5) and finish each task (running → complete) before polling again.

First a saturation window measures capacity: 4 creators post as fast as they
can; capacity = (creations/s + completions/s) / 2. Then tasks are created
open-loop at half that rate, evenly spaced, either by `POST /api/v1/tasks` or by
a signed Forgejo `issues` delivery (`POST /api/v1/webhooks/forgejo`, HMAC-SHA256
of the raw body, a new issue number and delivery id each time). Latency is
from just before the creating request is written to just after the agent's
dequeue reply is read (same process, one monotonic clock).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import shutil
import time
from typing import Any

from tests.e2e.server import ADMIN_TOKEN, PULL_TOKEN, ServerProcess
from tests.paths import WEBHOOKS

from bench.common import Config, Section, percentile, scratch_dir
from bench.http import RawClient

SECRET = "bench-webhook-secret"  # noqa: S105 -- a test fixture, not a credential
FIXTURES = WEBHOOKS
AGENTS = 16
CAPABILITY = "code:python"


class Webhook:
    """Signed `issues` deliveries built from the real Forgejo payload, one issue each."""

    def __init__(self) -> None:
        self.payload = json.loads((FIXTURES / "issues_label_updated.json").read_text())
        manifest = json.loads((FIXTURES / "manifest.json").read_text())
        sent = next(d for d in manifest["deliveries"] if d["file"] == "issues_label_updated.json")
        self.headers = {
            k: v
            for k, v in sent["headers"].items()
            if k.lower() in ("x-forgejo-event", "x-forgejo-event-type")
        }
        self.nonce = time.time_ns()

    def build(self, n: int) -> tuple[bytes, dict[str, str]]:
        payload = dict(self.payload)
        issue = dict(payload["issue"])
        issue["number"] = payload["number"] = 100_000 + n
        issue["title"] = f"bench {n}"
        issue["labels"] = [{**issue["labels"][0], "name": f"agent:{CAPABILITY}"}]
        payload["issue"] = issue
        body = json.dumps(payload).encode()
        signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        headers = {
            **self.headers,
            "X-Forgejo-Signature": signature,
            "X-Forgejo-Delivery": f"bench-{self.nonce}-{n}",
        }
        return body, headers


class Harness:
    def __init__(self, url: str) -> None:
        self.url = url
        self.created_at: dict[int, float] = {}
        self.held: list[tuple[int, float]] = []
        self.completed = 0
        self.stop = False
        self.webhook = Webhook()
        self.counter = 0

    async def agent(self, agent_id: str) -> None:
        client = RawClient(self.url, {"Authorization": f"Bearer {PULL_TOKEN}"})
        await client.post(
            "/api/v1/agents/register",
            {
                "agent_id": agent_id,
                "agent_type": "bench",
                "capabilities": [CAPABILITY],
                "max_concurrency": 1,
            },
        )
        try:
            while not self.stop:
                status, got = await client.post(
                    "/api/v1/tasks/dequeue", {"agent_id": agent_id, "wait_secs": 5}
                )
                held = time.monotonic()
                if status != 200:
                    continue
                task = got  # the task object itself, with its lease
                self.held.append((int(task["title"].rsplit(" ", 1)[1]), held))
                lease = got["lease"]
                await client.post(
                    f"/api/v1/tasks/{task['task_id']}/status",
                    {"agent_id": agent_id, "lease": lease, "state": "running"},
                )
                await client.post(
                    f"/api/v1/tasks/{task['task_id']}/complete",
                    {"agent_id": agent_id, "lease": lease, "status": "completed"},
                )
                self.completed += 1
        finally:
            await client.close()

    async def create(self, client: RawClient, source: str) -> None:
        n = self.counter
        self.counter += 1
        if source == "api":
            body = json.dumps(
                {"title": f"bench {n}", "prompt": "noop", "required_capabilities": [CAPABILITY]}
            ).encode()
            self.created_at[n] = time.monotonic()
            status, reply = await client.request("POST", "/api/v1/tasks", body)
            ok = status == 201
        else:
            body, headers = self.webhook.build(n)
            self.created_at[n] = time.monotonic()
            status, reply = await client.request("POST", "/api/v1/webhooks/forgejo", body, headers)
            ok = status == 200 and json.loads(reply)["status"] == "created"
        if not ok:
            raise RuntimeError(f"{source} creation answered {status}: {reply[:300]!r}")


async def _pool(url: str, size: int) -> asyncio.Queue[RawClient]:
    pool: asyncio.Queue[RawClient] = asyncio.Queue()
    for _ in range(size):
        pool.put_nowait(RawClient(url, {"Authorization": f"Bearer {ADMIN_TOKEN}"}))
    return pool


async def _with_client(pool: asyncio.Queue[RawClient], h: Harness, source: str) -> None:
    client = await pool.get()
    try:
        await h.create(client, source)
    finally:
        pool.put_nowait(client)


async def _creator(h: Harness, url: str, source: str, until: float) -> None:
    client = RawClient(url, {"Authorization": f"Bearer {ADMIN_TOKEN}"})
    try:
        while time.monotonic() < until:
            await h.create(client, source)
    finally:
        await client.close()


async def _session(url: str, seconds: float, runs: int) -> list[dict[str, Any]]:
    """Warm up, saturate (capacity), then `runs` × (API, webhook) windows at half capacity."""
    h = Harness(url)
    agents = [asyncio.create_task(h.agent(f"lp-{i}")) for i in range(AGENTS)]
    await asyncio.sleep(0.5)
    out: list[dict[str, Any]] = []
    pool = await _pool(url, 16)
    plan: list[tuple[str, float | None, float]] = [
        ("warmup", 20.0, 1.0),
        ("api", None, seconds),
    ]
    plan += [("api", 0.5, seconds), ("webhook", 0.5, seconds)] * runs
    capacity = 0.0
    for source, fraction, seconds in plan:
        rate = fraction * capacity if fraction is not None and source != "warmup" else fraction
        first = h.counter
        done_before = h.completed
        started = time.monotonic()
        if rate is None:
            await asyncio.gather(*(_creator(h, url, source, started + seconds) for _ in range(4)))
            elapsed = time.monotonic() - started
            created = h.counter - first
            completed = h.completed - done_before
            capacity = (created + completed) / 2 / elapsed
            out.append(
                {
                    "source": "saturation",
                    "created_per_sec": created / elapsed,
                    "completed_per_sec": completed / elapsed,
                    "capacity": capacity,
                }
            )
            # Let the backlog drain before the next window.
            while h.completed < h.counter and time.monotonic() - started < seconds + 30:  # noqa: ASYNC110
                await asyncio.sleep(0.1)
            continue
        interval = 1.0 / rate
        pending: list[asyncio.Task[None]] = []
        k = 0
        while True:
            due = started + k * interval
            if due - started >= seconds:
                break
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            pending.append(
                asyncio.create_task(_with_client(pool, h, "api" if source == "warmup" else source))
            )
            k += 1
        await asyncio.gather(*pending)
        last = h.counter
        deadline = time.monotonic() + 10
        while h.completed < last and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        lat = [(t - h.created_at[n]) * 1000 for n, t in h.held if first <= n < last]
        out.append(
            {
                "source": source,
                "rate": round(rate, 1),
                "samples": len(lat),
                "p50_ms": percentile(lat, 50),
                "p99_ms": percentile(lat, 99),
                "max_ms": max(lat) if lat else float("nan"),
            }
        )
    h.stop = True
    while not pool.empty():
        await pool.get_nowait().close()
    for a in agents:
        a.cancel()
    await asyncio.gather(*agents, return_exceptions=True)
    return out


def bench(cfg: Config) -> Section:
    section = Section("dispatch", "Dispatch latency: creation → held by a long-polling agent")
    seconds = cfg.pick(5.0, 2.0)
    tmp = scratch_dir("dispatch")
    server = ServerProcess(
        tmp, orchestrator={"sweep_interval_secs": 1.0}, forgejo={"webhook_secret": SECRET}
    ).start()
    try:
        windows = asyncio.run(_session(server.url, seconds, cfg.runs))
        capacity = next(w for w in windows if w["source"] == "saturation")
        rate = capacity["capacity"] / 2
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    section.notes.append(
        f"capacity {capacity['capacity']:.0f} tasks/s "
        f"(creations {capacity['created_per_sec']:.0f}/s, "
        f"completions {capacity['completed_per_sec']:.0f}/s at saturation); measured at "
        f"{rate:.0f} tasks/s, {AGENTS} long-polling agents, {cfg.runs} windows of {seconds} s "
        "per source."
    )
    for source in ("api", "webhook"):
        rows = [w for w in windows if w["source"] == source]
        label = "POST /api/v1/tasks" if source == "api" else "signed Forgejo webhook"
        section.add(
            f"{source}_p50",
            f"creation→held p50, {label}",
            "ms",
            [r["p50_ms"] for r in rows],
            higher_is_better=False,
        )
        section.add(
            f"{source}_p99",
            f"creation→held p99, {label}",
            "ms",
            [r["p99_ms"] for r in rows],
            higher_is_better=False,
        )
    section.checks["capacity"] = capacity
    section.checks["windows"] = windows
    return section
