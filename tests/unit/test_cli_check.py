"""The agent's start-up check of its CLI: present or a clear error, and its version."""

import asyncio
import stat
from pathlib import Path

import pytest

from agent_fleet.adapters.catalog import adapter_for
from agent_fleet.worker.cli_check import CliMissing, check_cli


def fake_program(folder: Path, name: str, script: str) -> None:
    path = folder / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_the_version_is_the_cli_s_answer(tmp_path: Path) -> None:
    fake_program(tmp_path, "codex", 'echo "WARNING: a note first" >&2; echo "codex-cli 0.171.0"')
    info = asyncio.run(check_cli(adapter_for("codex"), {"PATH": str(tmp_path)}))
    assert info.path == str(tmp_path / "codex") and info.version == "codex-cli 0.171.0"


def test_a_missing_cli_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(CliMissing) as caught:
        asyncio.run(check_cli(adapter_for("claude"), {"PATH": str(tmp_path)}))
    assert caught.value.program == "claude"


def test_a_cli_without_a_version_still_runs(tmp_path: Path) -> None:
    fake_program(tmp_path, "aider", "exit 2")
    info = asyncio.run(check_cli(adapter_for("aider"), {"PATH": str(tmp_path)}))
    assert info.version is None
    fake_program(tmp_path, "my-agent", "exit 0")
    custom = adapter_for("my-agent", ["my-agent", "{prompt_file}"])
    assert asyncio.run(check_cli(custom, {"PATH": str(tmp_path)})).version is None
