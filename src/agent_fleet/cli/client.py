"""What the commands that talk to a server share: its address and token, one call, and
printing a reply as a table (or as JSON for scripts)."""

import json
from collections.abc import Callable
from typing import Any

import click
import httpx
from rich.console import Console

DEFAULT_SERVER = "http://127.0.0.1:9090"
server_option = click.option(
    "--server",
    envvar="AGENT_FLEET_SERVER",
    default=DEFAULT_SERVER,
    show_default=True,
    help="Orchestrator URL.",
)
token_option = click.option(
    "--token",
    envvar="AGENT_FLEET_TOKEN",
    default=None,
    help="Bearer token (admin token for writes).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print raw JSON for scripts.")


def request(
    method: str, server: str, path: str, token: str | None, **kwargs: Any
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        reply = httpx.request(
            method, server.rstrip("/") + path, headers=headers, timeout=30, **kwargs
        )
    except httpx.HTTPError as e:
        raise click.ClickException(f"cannot reach {server}: {e}") from e
    if reply.status_code >= 400:
        try:
            body = reply.json()
            detail = f"{body.get('error')} ({body.get('code')})"
        except ValueError:
            detail = reply.text[:200]
        raise click.ClickException(f"HTTP {reply.status_code}: {detail}")
    result: dict[str, Any] = reply.json() if reply.content else {}
    return result


def emit(data: Any, as_json: bool, render: Callable[[Console], None]) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        # Piped output keeps whole ids and titles instead of wrapping at 80 columns.
        console = Console()
        render(console if console.is_terminal else Console(width=240))
