"""`agent-fleet tasks …` and `agent-fleet agents …`: the HTTP API for people at a terminal."""

import sys
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from agent_fleet.cli.client import emit, json_option, request, server_option, token_option
from agent_fleet.cli.report import attempts_table, spend_text


def _task_table(tasks: list[dict[str, Any]]) -> Table:
    table = Table("TASK", "STATE", "TITLE", "AGENT", "ATTEMPT", "PRIORITY", "SPEND", "UPDATED")
    for t in tasks:
        table.add_row(
            t["task_id"],
            t["status"] + (" (held)" if t.get("hold") else ""),
            t["title"][:60],
            t.get("assigned_agent_id") or "-",
            f"{t['attempt']}/{t['max_retries']}",
            str(t["priority"]),
            spend_text(t.get("spend")),
            t["updated_at"],
        )
    return table


@click.group("tasks")
def tasks_group() -> None:
    """List, show, create, retry and cancel tasks."""


@tasks_group.command("list")
@server_option
@token_option
@json_option
@click.option("--state", default=None, help="Only tasks in this state.")
@click.option("--agent-id", default=None)
@click.option("--repo", default=None)
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@click.option(
    "--sort",
    type=click.Choice(["newest", "spend"]),
    default="newest",
    show_default=True,
    help="spend: the biggest spenders across attempts first (USD, then tokens).",
)
def tasks_list(
    server: str,
    token: str | None,
    as_json: bool,
    state: str | None,
    agent_id: str | None,
    repo: str | None,
    limit: int,
    sort: str,
) -> None:
    params: dict[str, str | int] = {
        k: v for k, v in {"state": state, "agent_id": agent_id, "repo": repo}.items() if v
    }
    data = request(
        "GET", server, "/api/v1/tasks", token, params={**params, "limit": limit, "sort": sort}
    )
    emit(data, as_json, lambda c: c.print(_task_table(data["tasks"])))


@tasks_group.command("show")
@server_option
@token_option
@json_option
@click.argument("task_id")
def tasks_show(server: str, token: str | None, as_json: bool, task_id: str) -> None:
    task = request("GET", server, f"/api/v1/tasks/{task_id}", token)
    events = _all_events(server, task_id, token)
    spend = request("GET", server, f"/api/v1/tasks/{task_id}/spend", token)

    def render(console: Console) -> None:
        console.print(_task_table([task]))
        if task.get("hold"):
            console.print(f"held until {task['hold']['until']}: {task['hold']['reason']}")
        console.print(attempts_table(spend))
        if spend["budget"]["overrun"]:
            console.print(f"budget: {spend['budget']['overrun']}")
        if task.get("failure"):
            console.print(f"failure: {task['failure']['reason']}: {task['failure']['message']}")
        if task.get("pr"):
            console.print(f"pull request: {task['pr']['url']} ({task['pr']['state']})")
        for line in _delivered(task.get("receipt") or {}):
            console.print(line, markup=False, soft_wrap=True)  # paths are data, not markup
        history = Table("SEQ", "AT", "EVENT", "ACTOR", "DETAIL")
        for e in events:
            history.add_row(str(e["seq"]), e["at"], e["type"], e["actor"], _detail(e["data"]))
        console.print(history)

    emit({"task": task, "events": events, "spend": spend}, as_json, render)


def _all_events(server: str, task_id: str, token: str | None) -> list[dict[str, Any]]:
    """The whole history, page by page (the server caps each page)."""
    events: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
        page = request("GET", server, f"/api/v1/tasks/{task_id}/events", token, params=params)
        events += page["events"]
        cursor = page.get("next_cursor")
        if not cursor:
            return events


def _delivered(receipt: dict[str, Any]) -> list[str]:
    """The branch the run pushed and the files it changed, from the receipt's artifacts."""
    artifacts = receipt.get("artifacts") or []
    lines = [
        f"branch: {a.get('name')} at {(a.get('sha') or '?')[:12]}"
        for a in artifacts
        if a.get("type") == "branch"
    ]
    files = [str(a["path"]) for a in artifacts if a.get("type") == "file" and a.get("path")]
    if files:
        lines.append(f"files changed ({len(files)}): " + ", ".join(files))
    return lines


def _detail(data: dict[str, Any]) -> str:
    keys = ("agent_id", "reason", "message", "attempt", "retry_at")
    return ", ".join(f"{k}={data[k]}" for k in keys if data.get(k) is not None)[:120]


@tasks_group.command("create")
@server_option
@token_option
@json_option
@click.option("--title", required=True)
@click.option("--prompt", required=True, help="The prompt; '-' reads it from stdin.")
@click.option("--capability", "capabilities", multiple=True, help="Required capability (repeat).")
@click.option("--priority", type=int, default=0, show_default=True)
@click.option("--max-retries", type=int, default=None)
@click.option("--timeout-secs", type=int, default=None)
@click.option(
    "--mode", type=click.Choice(["undecided", "ssh_cli", "http_pull"]), default="undecided"
)
@click.option("--repo", default=None, help="owner/name of the task's repository.")
def tasks_create(
    server: str,
    token: str | None,
    as_json: bool,
    title: str,
    prompt: str,
    capabilities: tuple[str, ...],
    priority: int,
    max_retries: int | None,
    timeout_secs: int | None,
    mode: str,
    repo: str | None,
) -> None:
    if prompt == "-":
        prompt = sys.stdin.read()
    body: dict[str, Any] = {
        "title": title,
        "prompt": prompt,
        "required_capabilities": list(capabilities),
        "priority": priority,
        "execution_mode": mode,
    }
    body.update(
        {
            k: v
            for k, v in {
                "max_retries": max_retries,
                "timeout_secs": timeout_secs,
                "repo": repo,
            }.items()
            if v is not None
        }
    )
    task = request("POST", server, "/api/v1/tasks", token, json=body)
    emit(task, as_json, lambda c: c.print(f"created task {task['task_id']} ({task['status']})"))


def _action(name: str) -> click.Command:
    @click.command(name, help=f"{name.capitalize()} a task.")
    @server_option
    @token_option
    @json_option
    @click.argument("task_id")
    def command(server: str, token: str | None, as_json: bool, task_id: str) -> None:
        task = request("POST", server, f"/api/v1/tasks/{task_id}/{name}", token)
        emit(task, as_json, lambda c: c.print(f"task {task['task_id']} is now {task['status']}"))

    return command


tasks_group.add_command(_action("retry"))
tasks_group.add_command(_action("cancel"))


@click.group("agents")
def agents_group() -> None:
    """List agents."""


@agents_group.command("list")
@server_option
@token_option
@json_option
@click.option("--status", type=click.Choice(["online", "offline", "deregistered"]), default=None)
@click.option("--capability", default=None)
def agents_list(
    server: str, token: str | None, as_json: bool, status: str | None, capability: str | None
) -> None:
    params = {k: v for k, v in {"status": status, "capability": capability}.items() if v}
    data = request("GET", server, "/api/v1/agents", token, params=params)

    def render(console: Console) -> None:
        table = Table("AGENT", "TYPE", "MODE", "STATUS", "LOAD", "CAPABILITIES", "LAST HEARTBEAT")
        for a in data["agents"]:
            table.add_row(
                a["agent_id"],
                a["agent_type"],
                a["mode"],
                a["status"],
                f"{a['running_tasks']}/{a['max_concurrency']}",
                ", ".join(a["capabilities"]),
                a.get("last_heartbeat_at") or "-",
            )
        console.print(table)

    emit(data, as_json, render)
