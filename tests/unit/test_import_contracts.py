"""Each import contract of pyproject.toml can fail: a copy of the package gets one
deliberately bad import per contract (the breaks issue 19 found unnoticed among them),
and `lint-imports` must report every contract broken, each by its own import.

One run of `lint-imports` checks them all (a run costs seconds); the real tree's
contracts are kept, which `make lint` checks.
"""

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "agent_fleet"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

#: contract id → (module file under agent_fleet/, the line appended, the import reported).
BREAKS: dict[str, tuple[str, str, str]] = {
    "layers": (
        "ports/clock.py",
        "import agent_fleet.services.context",
        "agent_fleet.ports.clock -> agent_fleet.services.context",
    ),
    "edges": (
        "forgejo/client.py",
        "import agent_fleet.api.errors",
        "agent_fleet.forgejo.client -> agent_fleet.api.errors",
    ),
    "pure-domain": ("domain/ids.py", "import structlog", "agent_fleet.domain.ids -> structlog"),
    "use-cases": ("services/loops.py", "import httpx", "agent_fleet.services.loops -> httpx"),
    "through-services": (
        "web/charts.py",
        "import agent_fleet.ports.store",
        "agent_fleet.web.charts -> agent_fleet.ports.store",
    ),
    "adapters-implement-ports": (
        "hosts/runner.py",
        "import agent_fleet.services.tasks",
        "agent_fleet.hosts.runner -> agent_fleet.services.tasks",
    ),
    "agent-adapters": (
        "api/cursor.py",
        "import agent_fleet.adapters.codex",
        "agent_fleet.api.cursor -> agent_fleet.adapters.codex",
    ),
    "clients": (
        "cli/remote.py",
        "import agent_fleet.store.sqlite",
        "agent_fleet.cli.remote -> agent_fleet.store.sqlite",
    ),
}


def contracts() -> dict[str, str]:
    """Each contract's id and name, as pyproject.toml states them."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return {c["id"]: c["name"] for c in config["tool"]["importlinter"]["contracts"]}


def test_every_contract_has_a_break_here() -> None:
    assert set(BREAKS) == set(contracts())


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> str:
    """lint-imports' output on a copy of the package with every break applied."""
    if not LINT_IMPORTS.exists():
        pytest.skip("lint-imports is not installed (pip install -e '.[dev]')")
    copy = tmp_path_factory.mktemp("contracts")
    shutil.copytree(PACKAGE, copy / "src" / "agent_fleet", ignore=shutil.ignore_patterns("*.pyc"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    for module, line, _ in BREAKS.values():
        with (copy / "src" / "agent_fleet" / module).open("a") as f:
            f.write(f"\n{line}  # a deliberate break\n")
    # A module that no layer names: the exhaustive layers contract refuses it.
    (copy / "src" / "agent_fleet" / "stray.py").write_text('"""Placed nowhere."""\n')
    done = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=copy,
        # Wide enough that no contract name wraps.
        env={"PYTHONPATH": str(copy / "src"), "PATH": "/usr/bin:/bin", "COLUMNS": "300"},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode != 0, done.stdout
    return done.stdout


@pytest.mark.parametrize("contract", sorted(BREAKS))
def test_the_contract_fails_on_its_break(report: str, contract: str) -> None:
    name = contracts()[contract]
    flat = " ".join(report.split())  # the summary wraps long names
    assert f"{name} BROKEN" in flat, f"{name!r} was not broken:\n{report}"
    section = _section(report, name)
    assert BREAKS[contract][2] in section, f"{name!r} broke for another reason:\n{section}"


def test_a_module_in_no_layer_fails_the_layers_contract(report: str) -> None:
    assert "agent_fleet.stray" in _section(report, contracts()["layers"])


def _section(report: str, name: str) -> str:
    """The part of the report that explains why `name` broke (up to the next contract)."""
    start = report.rfind(name)  # the last mention: the explanation follows the summary
    following = re.search(r"\n\S[^\n]*\n-{3,}\n", report[start + len(name) :])
    end = start + len(name) + following.start() if following else len(report)
    return report[start:end]
