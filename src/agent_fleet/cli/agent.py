"""`agent-fleet agent`: run an http_pull agent against an orchestrator."""

import asyncio
import os
import socket
from datetime import timedelta
from pathlib import Path

import click

from agent_fleet.adapters.base import AgentAdapter
from agent_fleet.adapters.catalog import adapter_for
from agent_fleet.cli.settings import load
from agent_fleet.domain.errors import FleetError
from agent_fleet.execution.delivery import DEFAULT_AUTHOR_EMAIL, DEFAULT_AUTHOR_NAME
from agent_fleet.log_setup import configure_logging
from agent_fleet.worker.cli_check import CliInfo, CliMissing, check_cli
from agent_fleet.worker.delivery import TOKEN_ENV, GitOptions
from agent_fleet.worker.job import AgentSetup
from agent_fleet.worker.pull_agent import AgentOptions, PullAgent


@click.command("agent", context_settings={"ignore_unknown_options": False})
@click.option("--server", required=True, envvar="AGENT_FLEET_SERVER", help="Orchestrator URL.")
@click.option(
    "--token",
    envvar="AGENT_FLEET_HTTP_PULL_TOKEN",
    default=None,
    help="The shared http_pull_token (or AGENT_FLEET_HTTP_PULL_TOKEN).",
)
@click.option("--agent-id", default=None, help="Stable id (default: <agent-type>@<hostname>).")
@click.option(
    "--agent-type", required=True, help="codex, claude, aider, or any name with a command after --."
)
@click.option("--capability", "capabilities", multiple=True, help="A capability (repeat).")
@click.option("--max-concurrency", type=click.IntRange(1, 256), default=1, show_default=True)
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("agent-work"),
    show_default=True,
    help="Where workspaces are made.",
)
@click.option(
    "--git-base-url", default=None, help="Clone a task's repo owner/name from <url>/owner/name.git."
)
@click.option(
    "--git-author-name",
    envvar="AGENT_FLEET_GIT_AUTHOR_NAME",
    default=DEFAULT_AUTHOR_NAME,
    show_default=True,
    help="Who commits what the CLI left uncommitted.",
)
@click.option(
    "--git-author-email",
    envvar="AGENT_FLEET_GIT_AUTHOR_EMAIL",
    default=DEFAULT_AUTHOR_EMAIL,
    show_default=True,
)
@click.option(
    "--git-ssh-key",
    envvar="AGENT_FLEET_GIT_SSH_KEY",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="A deploy key for cloning and pushing over SSH (used by git only, not the CLI).",
)
@click.option(
    "--git-known-hosts",
    envvar="AGENT_FLEET_GIT_KNOWN_HOSTS",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="known_hosts for the git server (default: ~/.ssh/known_hosts).",
)
@click.option(
    "--git-username",
    envvar="AGENT_FLEET_GIT_USERNAME",
    default="agent-fleet",
    show_default=True,
    help="The user name sent with AGENT_FLEET_GIT_TOKEN over HTTPS.",
)
@click.option(
    "--shutdown-grace",
    type=float,
    default=60.0,
    show_default=True,
    help="Seconds running tasks get to finish on SIGTERM.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A config file to read [agent_types.<type>] (command, idle_timeout_secs, sandbox) "
    "and [orchestrator] idle_timeout_secs and keep_* from; embedded defaults without.",
)
@click.option("--log-format", type=click.Choice(["console", "json"]), default="console")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def agent_command(
    server: str,
    token: str | None,
    agent_id: str | None,
    agent_type: str,
    capabilities: tuple[str, ...],
    max_concurrency: int,
    work_dir: Path,
    git_base_url: str | None,
    git_author_name: str,
    git_author_email: str,
    git_ssh_key: str | None,
    git_known_hosts: str | None,
    git_username: str,
    shutdown_grace: float,
    config_path: Path | None,
    log_format: str,
    command: tuple[str, ...],
) -> None:
    """Register, pull tasks, run the agent CLI on each, ship its log and receipt.

    An argv after `--` is the agent command; it may use {prompt_file}, {workspace},
    {receipt_file}, {task_id}, {branch} and {repo}. It is never run through a shell.

    After a completed run in a clone, what the CLI left uncommitted is committed and the
    branch task/<id> pushed. A token for pushing over HTTPS is read from the environment
    (AGENT_FLEET_GIT_TOKEN), never from the command line.
    The CLI must be on PATH at start; its `--version` is printed and registered.
    """
    configure_logging(log_format)
    hostname = socket.gethostname()
    # `[agent_types.<type>]` and the workspace and idle-timeout keys of `[orchestrator]`
    # (the server's file will do); embedded defaults without one.
    settings = load(config_path, default=False, notes=False).settings
    own = settings.agent_type(agent_type)
    argv = list(command) or own.command
    try:
        adapter = adapter_for(agent_type, argv, sandbox=own.sandbox)
    except FleetError as e:  # fail now, not on the first task
        raise click.UsageError(str(e)) from e
    env = dict(os.environ)
    cli = _check_cli(adapter, env)
    idle = settings.idle_timeout_secs(agent_type)
    orch = settings.orchestrator
    setup = AgentSetup(
        server=server,
        agent_id=agent_id or f"{agent_type}@{hostname}",
        agent_type=agent_type,
        command=argv,
        work_dir=work_dir.resolve(),
        git_base_url=git_base_url,
        base_env=env,
        git=GitOptions(
            author_name=git_author_name,
            author_email=git_author_email,
            ssh_key=str(Path(git_ssh_key).resolve()) if git_ssh_key else None,
            known_hosts=str(Path(git_known_hosts).resolve()) if git_known_hosts else None,
            token=os.environ.get(TOKEN_ENV) or None,
            username=git_username,
        ),
        adapter=adapter,
        idle_timeout=timedelta(seconds=idle) if idle else None,
        keep_completed=timedelta(hours=orch.keep_completed_workspaces_hours),
        as_root=os.geteuid() == 0,
    )
    options = AgentOptions(
        capabilities=list(capabilities),
        max_concurrency=max_concurrency,
        shutdown_grace_secs=shutdown_grace,
        hostname=hostname,
        metadata={"cli": Path(cli.path).name, "cli_version": cli.version},
        keep_failed=timedelta(days=orch.keep_failed_workspaces_days),
    )
    asyncio.run(PullAgent(setup, options, token).run())


def _check_cli(adapter: AgentAdapter, env: dict[str, str]) -> CliInfo:
    """The CLI must be there before we take work; its version is printed and registered."""
    try:
        cli = asyncio.run(check_cli(adapter, env))
    except CliMissing as e:
        raise click.ClickException(
            f"agent CLI {e.program!r} not found on PATH; install it (see "
            "docs/agent-onboarding-guide.md) or give its command after --"
        ) from e
    click.echo(f"agent CLI: {cli.path} ({cli.version or 'version unknown'})", err=True)
    return cli
