"""Issue 15, finding 2, as the attack: an HTTP client takes over a `[[hosts]]` slot.

Before: `POST /agents/register` with `agent_id = "h1/fake"` switched the slot to
http_pull and replaced its capabilities and concurrency; the registrant then completed
the host's running task and was handed, by dequeue, the lease of a task the dispatcher
had launched on the host. Now the registration is refused (409) whatever the auth rules,
and nothing but the run's own lease acts for the slot.
"""

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from agent_fleet.domain import agent as agent_model
from agent_fleet.domain.agent import Registration
from agent_fleet.domain.errors import AgentIdTaken
from agent_fleet.domain.ids import AgentId
from agent_fleet.domain.states import AgentMode
from agent_fleet.services.agents import RegisterAgent
from agent_fleet.services.context import Context, append
from agent_fleet.services.fleet import Fleet
from agent_fleet.store.signal import AsyncioTaskSignal
from agent_fleet.store.sqlite import SqliteEventStore
from tests.compat.conftest import original_config
from tests.e2e.helpers import PATIENCE_SECS, task, wait_for
from tests.e2e.server import ADMIN_TOKEN, PULL_TOKEN, ServerProcess
from tests.e2e.test_ssh_cli import AGENT_TYPES, host_block
from tests.sshd import running

SLOT = "h1/fake"
RULES = {
    "strict, shared token": (None, PULL_TOKEN),
    "original, open mode": ("original", None),
}


@pytest.fixture(params=sorted(RULES))
def rules(request: pytest.FixtureRequest) -> tuple[str | None, str | None]:
    return RULES[request.param]


@pytest.fixture
def fleet(tmp_path: Path, rules: tuple[str | None, str | None]) -> Iterator[ServerProcess]:
    agent_auth, pull_token = rules
    proc = ServerProcess(
        tmp_path,
        orchestrator={
            **original_config(agent_auth, pull_token),
            "dispatch_interval_secs": 1,
            "ssh_poll_interval_secs": 0.2,
        },
        extra_toml=host_block("h1", tmp_path / "runs", None) + AGENT_TYPES,
    ).start()
    yield proc
    proc.stop()


def test_a_slot_cannot_be_taken_over_over_http(
    fleet: ServerProcess, rules: tuple[str | None, str | None], tmp_path: Path
) -> None:
    _, pull_token = rules
    attacker = {"Authorization": f"Bearer {pull_token}"} if pull_token else {}
    with (
        httpx.Client(base_url=fleet.url, timeout=30) as http,
        httpx.Client(
            base_url=fleet.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
        ) as admin,
    ):
        pid_file = tmp_path / "cli.pid"
        body = {
            "title": "host work",
            "prompt": f"SLEEP 120 PIDFILE {pid_file}",
            "required_capabilities": ["code"],
            "execution_mode": "ssh_cli",
        }
        task_id = admin.post("/api/v1/tasks", json=body).json()["task_id"]
        wait_for(
            lambda: task(admin, task_id)["state"] == "running", PATIENCE_SECS, "the slot runs it"
        )
        wait_for(
            lambda: pid_file.exists() and pid_file.read_text() != "", PATIENCE_SECS, "CLI started"
        )
        before = task(admin, task_id)
        assert before["agent_id"] == SLOT

        takeover = {
            "agent_id": SLOT,
            "agent_type": "fake",
            "capabilities": ["code", "evil"],
            "max_concurrency": 50,
        }
        reply = http.post("/api/v1/agents/register", json=takeover, headers=attacker)
        assert reply.status_code == 409, reply.text
        assert reply.json()["code"] == "agent_id_taken"
        assert "[[hosts]] slot" in reply.json()["error"]

        receipt = {"agent_id": SLOT, "status": "completed", "summary": "mine now"}
        for path, payload in [
            (f"/api/v1/tasks/{task_id}/complete", receipt),
            ("/api/v1/receipts", {**receipt, "task_id": task_id}),
            (f"/api/v1/tasks/{task_id}/status", {"agent_id": SLOT, "status": "failed"}),
            ("/api/v1/tasks/dequeue", {"agent_id": SLOT}),
            ("/api/v1/agents/heartbeat", {"agent_id": SLOT}),
            ("/api/v1/agents/deregister", {"agent_id": SLOT}),
        ]:
            refused = http.post(path, json=payload, headers=attacker)
            assert refused.status_code == 401, (path, refused.text)
            assert "[[hosts]] slot" in refused.json()["error"]

        slot = {a["agent_id"]: a for a in admin.get("/api/v1/agents").json()["agents"]}[SLOT]
        assert (slot["mode"], slot["capabilities"], slot["max_concurrency"]) == (
            "ssh_cli",
            ["code"],
            2,
        )
        assert slot["status"] == "online"
        after = task(admin, task_id)
        assert (after["state"], after["agent_id"], after["attempt"]) == (
            "running",
            SLOT,
            before["attempt"],
        )

        pid = int(pid_file.read_text())
        assert admin.post(f"/api/v1/tasks/{task_id}/cancel").status_code == 200
        wait_for(lambda: not running(pid), PATIENCE_SECS, "CLI killed")


def test_the_id_of_a_removed_host_is_not_registered_over_http(tmp_path: Path) -> None:
    """A slot whose host left the config stays an ssh_cli agent (deregistered): its id is
    still refused, and so is any id whose registered mode differs."""

    async def scenario() -> tuple[str, str, AgentMode]:
        store = SqliteEventStore(tmp_path / "f.db")
        await store.migrate()
        ctx = Context(store=store, clock=_Clock(), signal=AsyncioTaskSignal())
        old_slot = Registration(
            agent_id=AgentId("gone/codex"),
            agent_type="codex",
            mode=AgentMode.SSH_CLI,
            hostname="gone.example",
            capabilities=("code",),
            max_concurrency=1,
            host_id="gone",
        )
        now = ctx.clock.now()
        registered = agent_model.register(None, old_slot, now, actor="dispatcher")
        await append(ctx, registered)
        slot = agent_model.evolve(None, registered[0])
        await append(ctx, agent_model.deregister(slot, now, actor="dispatcher"))
        fleet = Fleet.assemble(ctx)  # no [[hosts]] configured any more
        takeover = RegisterAgent(
            agent_id="gone/codex",
            agent_type="codex",
            hostname=None,
            capabilities=("code", "evil"),
            max_concurrency=9,
        )
        with pytest.raises(AgentIdTaken) as refused:
            await fleet.agents.register(takeover)
        kept = await fleet.agents.get("gone/codex")
        await store.close()
        return str(refused.value), kept.capabilities[-1], kept.mode

    message, last_capability, mode = asyncio.run(scenario())
    assert "belongs to an ssh_cli agent" in message
    assert (last_capability, mode) == ("code", AgentMode.SSH_CLI)


class _Clock:
    def now(self) -> datetime:
        return datetime(2026, 1, 1, tzinfo=UTC)
