"""Per-agent-type settings: idle timeouts (with the global default), Codex's sandbox mode,
a command needed only for types that are not built in; completed workspaces' keep."""

from pathlib import Path

import pytest

from agent_fleet.bootstrap import agent_type_adapter, host_slots
from agent_fleet.config import ConfigError, load_settings
from tests.unit.test_adapters import SPEC


def load(tmp_path: Path, text: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "config.toml"
    path.write_text(text)
    return load_settings(path, {}).settings


def test_defaults(tmp_path: Path) -> None:
    settings = load(tmp_path, "")
    assert settings.idle_timeout_secs("codex") == 300
    assert settings.orchestrator.keep_completed_workspaces_hours == 24


def test_a_type_overrides_the_global_idle_timeout_and_zero_means_never(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        "[orchestrator]\nidle_timeout_secs = 120\n"
        "[agent_types.codex]\nidle_timeout_secs = 20\n"
        "[agent_types.aider]\nidle_timeout_secs = 0\n",
    )
    assert settings.idle_timeout_secs("codex") == 20
    assert settings.idle_timeout_secs("claude") == 120
    assert settings.idle_timeout_secs("aider") is None


def test_codex_sandbox_mode_reaches_its_command_line(tmp_path: Path) -> None:
    settings = load(tmp_path, '[agent_types.codex]\nsandbox = "read-only"\n')
    argv = agent_type_adapter(settings, "codex").argv(SPEC)
    assert argv[argv.index("--sandbox") + 1] == "read-only"


def test_an_unknown_sandbox_mode_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"agent_types\.codex\.sandbox"):
        load(tmp_path, '[agent_types.codex]\nsandbox = "yolo"\n')


def test_a_custom_type_needs_a_command(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"agent_types\.mine\.command: needed"):
        load(tmp_path, "[agent_types.mine]\nidle_timeout_secs = 5\n")


def test_host_slots_carry_their_types_idle_timeout(tmp_path: Path) -> None:
    settings = load(
        tmp_path,
        '[[hosts]]\nhost_id = "h"\nhostname = "localhost"\nwork_dir = "/w"\n'
        'agents = [{agent_type = "codex"}, {agent_type = "claude"}]\n'
        "[agent_types.codex]\nidle_timeout_secs = 30\n",
    )
    limits = {s.agent_type: s.idle_timeout for s in host_slots(settings)}
    assert limits["codex"] is not None and limits["codex"].total_seconds() == 30
    assert limits["claude"] is not None and limits["claude"].total_seconds() == 300
