"""How the commands that read a config file find it, load it and report on it."""

import asyncio
import os
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click

from agent_fleet.config import DEFAULT_CONFIG_PATH, ConfigError, LoadedSettings, load_settings
from agent_fleet.domain.errors import FleetError

T = TypeVar("T")
config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=f"Config file (default: ./{DEFAULT_CONFIG_PATH} if present, else embedded defaults).",
)


def load(config_path: Path | None, *, default: bool = True, notes: bool = True) -> LoadedSettings:
    """The settings of `config_path` (`default`: else ./config.toml when present) and the
    environment; notes and warnings go to stderr, errors end the command."""
    if config_path is None and default and DEFAULT_CONFIG_PATH.exists():
        config_path = DEFAULT_CONFIG_PATH
    try:
        loaded = load_settings(config_path, os.environ)
    except ConfigError as e:
        raise click.ClickException(str(e)) from e
    for note in loaded.notes if notes else []:
        click.echo(f"note: {note}", err=True)
    for warning in loaded.warnings:
        click.echo(f"warning: {warning}", err=True)
    return loaded


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine; a deliberate error is the command's message, not a trace."""
    try:
        return asyncio.run(coro)
    except FleetError as e:
        raise click.ClickException(str(e)) from e
