"""Loads SQL from `.sql` files split into `-- name: <query>` blocks (procrastinate style)."""

import re
from importlib import resources

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


def load_queries(dialect: str) -> dict[str, str]:
    text = resources.files("agent_fleet.store").joinpath("sql", dialect, "queries.sql").read_text()
    parts = _NAME.split(text)
    # parts = [preamble, name1, body1, name2, body2, ...]
    return {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}


def load_migrations(dialect: str) -> list[tuple[int, str, str]]:
    """(number, name, sql) of every numbered migration file, in order."""
    folder = resources.files("agent_fleet.store").joinpath("sql", dialect, "migrations")
    found = []
    for entry in folder.iterdir():
        match = re.fullmatch(r"(\d{4})_(\w+)\.sql", entry.name)
        if match:
            found.append((int(match.group(1)), match.group(2), entry.read_text()))
    return sorted(found)
