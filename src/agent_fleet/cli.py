"""The `agent-fleet` command: serve, config check, db migrate|rebuild, and the remote commands."""

import asyncio
import os
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click
import structlog

from agent_fleet import __version__
from agent_fleet.api.connections import ConnectionLimits
from agent_fleet.api.metrics import FleetMetrics
from agent_fleet.api.server import FleetServer
from agent_fleet.bootstrap import (
    build_app,
    build_fleet,
    describe_store,
    open_store,
    open_store_url,
    open_to_the_network_without_tokens,
    secret_values,
)
from agent_fleet.cli_agent import agent_command
from agent_fleet.cli_remote import agents_group, tasks_group
from agent_fleet.cli_report import report_command
from agent_fleet.config import (
    DEFAULT_CONFIG_PATH,
    ConfigError,
    LoadedSettings,
    Settings,
    load_settings,
)
from agent_fleet.config_render import redacted, render_toml
from agent_fleet.domain.errors import FleetError
from agent_fleet.logs import configure_logging
from agent_fleet.services.copying import copy_events
from agent_fleet.services.fleet import Fleet
from agent_fleet.services.rebuild import rebuild

T = TypeVar("T")
log = structlog.get_logger("agent_fleet")
config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=f"Config file (default: ./{DEFAULT_CONFIG_PATH} if present, else embedded defaults).",
)


def _load(config_path: Path | None) -> LoadedSettings:
    if config_path is None and DEFAULT_CONFIG_PATH.exists():
        config_path = DEFAULT_CONFIG_PATH
    try:
        loaded = load_settings(config_path, os.environ)
    except ConfigError as e:
        raise click.ClickException(str(e)) from e
    for note in loaded.notes:
        click.echo(f"note: {note}", err=True)
    for warning in loaded.warnings:
        click.echo(f"warning: {warning}", err=True)
    return loaded


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
    loaded = _load(config_path)
    settings = loaded.settings
    configure_logging(log_format, secrets=secret_values(settings))
    server = settings.server.model_copy(
        update={k: v for k, v in {"bind": bind, "port": port}.items() if v is not None}
    )
    settings = settings.model_copy(update={"server": server})
    try:
        asyncio.run(_serve(settings, loaded.source))
    except FleetError as e:
        raise click.ClickException(str(e)) from e


async def _serve(settings: Settings, source: Path | None) -> None:
    store, store_name = await open_store(settings)
    fleet: Fleet | None = None
    try:
        metrics = FleetMetrics()
        fleet = build_fleet(store, settings, metrics)
        app = build_app(fleet, settings, store_name, metrics)
        for what in open_to_the_network_without_tokens(settings):
            log.warning("UNPROTECTED: listening beyond loopback without a token", missing=what)
        log.info(
            "agent-fleet starting",
            version=__version__,
            config=str(source) if source else "embedded defaults",
            store=store_name,
            listen=f"{settings.server.bind}:{settings.server.port}",
        )
        limits = ConnectionLimits(
            header_timeout_secs=settings.server.header_timeout_secs,
            body_timeout_secs=settings.server.body_timeout_secs,
            max_connections=settings.server.max_connections,
        )
        server = FleetServer(
            app, settings.server.bind, settings.server.port, limits, on_exit=fleet.dequeue.close
        )
        stop = asyncio.Event()
        # Shutdown order: uvicorn stops intake and drains requests, then the
        # duties are told to stop, then (finally) the store closes.
        async with asyncio.TaskGroup() as group:
            group.create_task(fleet.run_background(stop))
            await server.serve()
            stop.set()
    finally:
        if fleet is not None and fleet.forge is not None:
            await fleet.forge.close()
        if fleet is not None and fleet.hosts is not None:
            await fleet.hosts.close()
        await store.close()
        log.info("agent-fleet stopped")


@main.group("config")
def config_group() -> None:
    """Inspect the configuration."""


@config_group.command("check")
@config_option
def config_check(config_path: Path | None) -> None:
    """Validate the config and print the effective settings, secrets redacted."""
    loaded = _load(config_path)
    source = loaded.source or "embedded defaults (no config file)"
    click.echo(f"# {source}: OK")
    click.echo(render_toml(redacted(loaded.settings)))


@main.group("db")
def db_group() -> None:
    """Manage the event store."""


@db_group.command("migrate")
@config_option
def db_migrate(config_path: Path | None) -> None:
    """Apply pending schema migrations."""
    settings = _load(config_path).settings

    async def run() -> None:
        store, name = await open_store(settings)  # opening migrates
        await store.close()
        click.echo(f"{name} store at {describe_store(settings)}: schema up to date")

    _run(run())


@db_group.command("rebuild")
@config_option
@click.option("--check", is_flag=True, help="Only compare; do not rewrite the projections.")
def db_rebuild(config_path: Path | None, check: bool) -> None:
    """Rebuild tasks and agents from the events; fail if the stored projections differed."""
    settings = _load(config_path).settings

    async def run() -> int:
        store, _ = await open_store(settings)
        try:
            report = await rebuild(store, write=not check)
        finally:
            await store.close()
        click.echo(
            f"replayed {report.events} events into {report.tasks} tasks and {report.agents} agents"
        )
        if report.matches:
            click.echo("projections match the events")
            return 0
        for line in report.differences:
            click.echo(f"DIFFERS: {line}", err=True)
        verb = "were left as they are (--check)" if check else "have been rewritten"
        click.echo(f"{len(report.differences)} projection rows differed and {verb}", err=True)
        return 1

    sys.exit(_run(run()))


@db_group.command("copy")
@click.option("--from", "source", required=True, help="sqlite:///path or postgresql://…")
@click.option("--to", "target", required=True, help="An empty store: postgresql://… or sqlite:///…")
def db_copy(source: str, target: str) -> None:
    """Copy every event to an empty store and verify it by a rebuild there."""

    async def run() -> int:
        src, _ = await open_store_url(source)
        try:
            dst, kind = await open_store_url(target)
            try:
                report = await copy_events(
                    src, dst, lambda n: click.echo(f"copied {n} events", err=True)
                )
            finally:
                await dst.close()
        finally:
            await src.close()
        click.echo(
            f"copied {report.events} events into {report.tasks} tasks and "
            f"{report.agents} agents on {kind}"
        )
        if report.matches:
            click.echo("verified: the target's projections match a replay of its events")
            return 0
        for line in report.differences:
            click.echo(f"DIFFERS: {line}", err=True)
        return 1

    sys.exit(_run(run()))


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coro)
    except FleetError as e:
        raise click.ClickException(str(e)) from e


main.add_command(tasks_group)
main.add_command(agent_command)
main.add_command(agents_group)
main.add_command(report_command)
