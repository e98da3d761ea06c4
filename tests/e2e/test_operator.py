"""Operator paths over real HTTP and the real CLI: assign, deregister, tasks/agents commands."""

import json
import subprocess
import sys
from pathlib import Path

import httpx

from tests.e2e.helpers import create, dequeue, events, register, task
from tests.e2e.server import ADMIN_TOKEN, ServerProcess


def test_operator_assigns_a_task_explicitly(admin: httpx.Client, puller: httpx.Client) -> None:
    register(puller, "chosen", ["x"])
    task_id = create(admin, "t", ["y"])["task_id"]
    assigned = admin.post(f"/api/v1/tasks/{task_id}/assign", json={"agent_id": "chosen"})
    assert assigned.status_code == 200
    assert assigned.json()["agent_id"] == "chosen"
    got = dequeue(puller, "chosen")
    assert got is not None and got[0] == task_id
    again = admin.post(f"/api/v1/tasks/{task_id}/assign", json={"agent_id": "chosen"})
    assert again.status_code == 409
    unknown = admin.post(f"/api/v1/tasks/{task_id}/assign", json={"agent_id": "nobody"})
    assert unknown.status_code == 404


def test_deregistered_agent_hands_its_tasks_back(admin: httpx.Client, puller: httpx.Client) -> None:
    register(puller, "leaving", [], slots=2)
    started_id = create(admin, "started", [])["task_id"]
    unstarted_id = create(admin, "unstarted", [])["task_id"]
    got = dequeue(puller, "leaving")
    assert got is not None and got[0] == started_id
    puller.post(
        f"/api/v1/tasks/{started_id}/status",
        json={"agent_id": "leaving", "lease": got[1], "state": "running"},
    )
    assert dequeue(puller, "leaving") is not None
    gone = puller.post("/api/v1/agents/deregister", json={"agent_id": "leaving"})
    assert gone.json() == {"agent_id": "leaving", "status": "deregistered"}
    # Work was done on the started one: that attempt is lost, and retried.
    assert events(admin, started_id)[-2:] == ["task.agent_lost", "task.retried"]
    assert (task(admin, started_id)["state"], task(admin, started_id)["attempt"]) == ("created", 1)
    # Nothing was done on the other: it is released, no attempt spent.
    assert events(admin, unstarted_id)[-1] == "task.released"
    assert (task(admin, unstarted_id)["state"], task(admin, unstarted_id)["attempt"]) == (
        "created",
        0,
    )
    beat = puller.post("/api/v1/agents/heartbeat", json={"agent_id": "leaving"})
    assert beat.status_code == 404  # it must register again
    register(puller, "leaving", [])
    assert dequeue(puller, "leaving") is not None


def _cli(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "agent_fleet",
            *args,
            "--server",
            server.url,
            "--token",
            ADMIN_TOKEN,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_cli_creates_lists_shows_and_cancels(server: ServerProcess, puller: httpx.Client) -> None:
    created = _cli(
        server,
        "tasks",
        "create",
        "--title",
        "From the CLI",
        "--prompt",
        "do it",
        "--capability",
        "code:go",
        "--priority",
        "5",
        "--json",
    )
    assert created.returncode == 0, created.stderr
    task_id = json.loads(created.stdout)["task_id"]
    listed = _cli(server, "tasks", "list")
    assert "From the CLI" in listed.stdout and "created" in listed.stdout
    as_json = json.loads(_cli(server, "tasks", "list", "--json").stdout)
    assert [t["task_id"] for t in as_json["tasks"]] == [task_id]
    cancelled = _cli(server, "tasks", "cancel", task_id)
    assert cancelled.returncode == 0 and "cancelled" in cancelled.stdout
    shown = _cli(server, "tasks", "show", task_id, "--json")
    history = [e["type"] for e in json.loads(shown.stdout)["events"]]
    assert history == ["task.created", "task.cancelled"]
    refused = _cli(server, "tasks", "retry", task_id)
    assert refused.returncode == 1 and "HTTP 409" in refused.stderr
    register(puller, "cli-agent", ["code:go"])
    agents = _cli(server, "agents", "list")
    assert "cli-agent" in agents.stdout and "0/1" in agents.stdout


def test_sigterm_stops_cleanly(server: ServerProcess) -> None:
    assert server.stop() == 0
    assert "agent-fleet stopped" in server.log_path.read_text()


def test_config_check_names_file_key_and_reason(tmp_path: Path) -> None:
    bad = tmp_path / "config.toml"
    bad.write_text('[orchestrator]\ntask_timeout_secs = -1\nhttp_pull_token = "s3cret-value"\n')
    result = subprocess.run(
        [sys.executable, "-m", "agent_fleet", "config", "check", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert f"{bad}: orchestrator.task_timeout_secs: Input should be greater than 0" in result.stderr
    bad.write_text('[orchestrator]\nhttp_pull_token = "s3cret-value"\nmystery = 1\n')
    unknown = subprocess.run(
        [sys.executable, "-m", "agent_fleet", "config", "check", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert unknown.returncode == 1
    assert "orchestrator.mystery: unknown key" in unknown.stderr
    bad.write_text('[orchestrator]\nhttp_pull_token = "s3cret-value"\n')
    good = subprocess.run(
        [sys.executable, "-m", "agent_fleet", "config", "check", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert good.returncode == 0, good.stderr
    assert 'http_pull_token = "***"' in good.stdout
    for reply in (unknown, good):
        assert "s3cret-value" not in reply.stdout + reply.stderr


def test_metrics_report_states_events_dispatch_and_http(
    admin: httpx.Client, puller: httpx.Client
) -> None:
    register(puller, "m1", ["go"])
    create(admin, "a", ["go"])
    create(admin, "b", ["rust"])
    assert dequeue(puller, "m1") is not None
    text = admin.get("/metrics").text
    assert 'agent_fleet_tasks{state="created"} 1.0' in text
    assert 'agent_fleet_tasks{state="assigned"} 1.0' in text
    assert 'agent_fleet_queue_depth{capability="rust"} 1.0' in text
    assert 'agent_fleet_agents{mode="http_pull",status="online"} 1.0' in text
    assert 'agent_fleet_events_total{type="task.created"} 2.0' in text
    assert 'agent_fleet_events_total{type="task.assigned"} 1.0' in text
    assert "agent_fleet_dispatch_latency_seconds_count 1.0" in text
    assert 'route="/api/v1/tasks/dequeue",status="2xx"' in text


def test_requests_are_logged_with_ids_and_no_secrets(
    server: ServerProcess, admin: httpx.Client, puller: httpx.Client
) -> None:
    from tests.e2e.server import PULL_TOKEN

    token = register(puller, "logged", [])
    reply = admin.get("/api/v1/tasks", headers={"X-Request-ID": "trace-42"})
    assert reply.headers["x-request-id"] == "trace-42"
    generated = admin.get("/healthz").headers["x-request-id"]
    assert len(generated) == 16
    server.stop()
    log = server.log_path.read_text()
    assert "request_id=trace-42" in log and "route=/api/v1/tasks" in log
    for secret in (ADMIN_TOKEN, PULL_TOKEN, token):
        assert secret not in log


def test_an_unusable_database_path_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where a directory should be")
    config.write_text(f'[orchestrator]\ndb_path = "{blocker}/fleet.db"\n')
    result = subprocess.run(
        [sys.executable, "-m", "agent_fleet", "serve", "--config", str(config), "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "Error: sqlite store at" in result.stderr and "Traceback" not in result.stderr
