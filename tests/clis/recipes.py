"""The onboarding guide's recipes, read from the guide itself, so that what the tests run
is what the guide tells people to do.

A recipe is the fenced block after a `<!-- recipe: NAME -->` line in
docs/agent-onboarding-guide.md. Its example model server `https://models.example.com`
and model `my-model` are replaced by the stand-in's.
"""

from __future__ import annotations

import re
from pathlib import Path

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "agent-onboarding-guide.md"
EXAMPLE_URL = "https://models.example.com"
EXAMPLE_MODEL = "my-model"
EXAMPLE_KEY = "sk-your-key"
_RECIPE = re.compile(r"<!-- recipe: ([\w-]+) -->\s*```\w*\n(.*?)```", re.S)


def recipes() -> dict[str, str]:
    return {name: body for name, body in _RECIPE.findall(GUIDE.read_text())}


def recipe(name: str, *, url: str, model: str, key: str) -> str:
    body = recipes()[name]
    return body.replace(EXAMPLE_URL, url).replace(EXAMPLE_MODEL, model).replace(EXAMPLE_KEY, key)


def exported(name: str, *, url: str, model: str, key: str) -> dict[str, str]:
    """The `export NAME=value` lines of a shell recipe."""
    found = {}
    for line in recipe(name, url=url, model=model, key=key).splitlines():
        match = re.match(r"\s*export\s+([A-Z_][A-Z0-9_]*)=(\S+)\s*$", line)
        if match:
            found[match.group(1)] = match.group(2).strip("'\"")
    return found
