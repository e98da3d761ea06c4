"""The `agent-fleet` command: serve, config check, and the groups of the other modules."""

from pathlib import Path

import click

from agent_fleet import __version__
from agent_fleet.cli.agent import agent_command
from agent_fleet.cli.db import db_group
from agent_fleet.cli.remote import agents_group, tasks_group
from agent_fleet.cli.report import report_command
from agent_fleet.cli.settings import config_option, load, run
from agent_fleet.config.render import redacted, render_toml
from agent_fleet.log_setup import configure_logging


@click.group()
@click.version_option(__version__, prog_name="agent-fleet")
def main() -> None:
    """Agent Fleet: an orchestrator for AI coding agents."""


@main.command()
@config_option
@click.option("--bind", default=None, help="Address to listen on (overrides [server] bind).")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=None, help="Port (overrides [server] port)."
)
@click.option("--log-format", type=click.Choice(["console", "json"]), default="console")
def serve(config_path: Path | None, bind: str | None, port: int | None, log_format: str) -> None:
    """Run the orchestrator: HTTP API and background duties."""
    loaded = load(config_path)  # a refused config exits before the server is imported
    # Imported here: the other commands (`db rebuild`, …) need none of the server.
    from agent_fleet.bootstrap import secret_values
    from agent_fleet.server import serve as serve_fleet

    settings = loaded.settings
    configure_logging(log_format, secrets=secret_values(settings))
    server = settings.server.model_copy(
        update={k: v for k, v in {"bind": bind, "port": port}.items() if v is not None}
    )
    settings = settings.model_copy(update={"server": server})
    run(serve_fleet(settings, loaded.source))


@main.group("config")
def config_group() -> None:
    """Inspect the configuration."""


@config_group.command("check")
@config_option
def config_check(config_path: Path | None) -> None:
    """Validate the config and print the effective settings, secrets redacted."""
    loaded = load(config_path)
    source = loaded.source or "embedded defaults (no config file)"
    click.echo(f"# {source}: OK")
    click.echo(render_toml(redacted(loaded.settings)))


main.add_command(db_group)
main.add_command(tasks_group)
main.add_command(agent_command)
main.add_command(agents_group)
main.add_command(report_command)
