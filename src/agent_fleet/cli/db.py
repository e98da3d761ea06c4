"""`agent-fleet db …`: migrate the store, rebuild its projections, copy it to another."""

import sys
from pathlib import Path

import click

from agent_fleet.cli.settings import config_option, load, run
from agent_fleet.services.copying import copy_events
from agent_fleet.services.rebuild import rebuild
from agent_fleet.store.opening import describe_url, open_store_url


@click.group("db")
def db_group() -> None:
    """Manage the event store."""


@db_group.command("migrate")
@config_option
def db_migrate(config_path: Path | None) -> None:
    """Apply pending schema migrations."""
    settings = load(config_path).settings

    async def migrate() -> None:
        store, name = await open_store_url(settings.store_url)  # opening migrates
        await store.close()
        click.echo(f"{name} store at {describe_url(settings.store_url)}: schema up to date")

    run(migrate())


@db_group.command("rebuild")
@config_option
@click.option("--check", is_flag=True, help="Only compare; do not rewrite the projections.")
def db_rebuild(config_path: Path | None, check: bool) -> None:
    """Rebuild tasks and agents from the events; fail if the stored projections differed."""
    settings = load(config_path).settings

    async def replay() -> int:
        store, _ = await open_store_url(settings.store_url)
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

    sys.exit(run(replay()))


@db_group.command("copy")
@click.option("--from", "source", required=True, help="sqlite:///path or postgresql://…")
@click.option("--to", "target", required=True, help="An empty store: postgresql://… or sqlite:///…")
def db_copy(source: str, target: str) -> None:
    """Copy every event to an empty store and verify it by a rebuild there."""

    async def copy() -> int:
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

    sys.exit(run(copy()))
