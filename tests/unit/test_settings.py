"""config.toml: the original's keys, environment secrets, clear errors, redaction."""

import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from agent_fleet.config import ConfigError, Settings, load_settings
from agent_fleet.config.keys import ORIGINAL_IGNORED, check_keys
from agent_fleet.config.render import redacted, render_toml

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_embedded_defaults() -> None:
    loaded = load_settings(None, {})
    s = loaded.settings
    assert (s.server.bind, s.server.port) == ("127.0.0.1", 9090)
    assert s.store_url == "sqlite:///data/agent-fleet.db"
    assert loaded.warnings == [] and loaded.source is None


def test_the_example_config_loads_as_shipped() -> None:
    loaded = load_settings(ROOT / "config.example.toml", {})
    assert loaded.warnings == []
    assert loaded.settings.server.port == 9090


def test_a_full_original_style_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[server]
bind = "0.0.0.0"
port = 8080

[forgejo]
url = "https://forge.example"
token = "forge-token-123"
webhook_secret = "hook-secret-456"

[orchestrator]
db_path = "/var/lib/agent-fleet/fleet.db"
heartbeat_interval_secs = 15
heartbeat_timeout_threshold = 4
task_timeout_secs = 1800
default_max_retries = 5
dispatch_interval_secs = 5
http_pull_token = "pull-token-789"

[[hosts]]
host_id = "gpu-box"
hostname = "gpu.internal"
ssh_user = "agent"
ssh_port = 2222
ssh_key_path = "~/.ssh/id_ed25519"
work_dir = "/srv/agent-work"
agents = [{agent_type = "claude", max_concurrency = 2, capabilities = ["code:python"]}]

[agent_types.my-agent]
command = ["my-agent", "--prompt-file", "{prompt_file}", "--workdir", "{workspace}"]
""",
    )
    s = load_settings(path, {}).settings
    assert s.orchestrator.heartbeat_interval_secs == 15
    assert s.hosts[0].agents[0].capabilities == ["code:python"]
    assert s.agent_types["my-agent"].command[2] == "{prompt_file}"
    text = render_toml(redacted(s)) + str(s) + repr(s)
    for secret in ("forge-token-123", "hook-secret-456", "pull-token-789"):
        assert secret not in text
    assert 'http_pull_token = "***"' in render_toml(redacted(s))


def test_environment_secrets_win(tmp_path: Path) -> None:
    path = write(tmp_path, '[orchestrator]\nhttp_pull_token = "from-file"\n')
    env = {"AGENT_FLEET_HTTP_PULL_TOKEN": "from-env", "AGENT_FLEET_ADMIN_TOKEN": "adm"}
    s = load_settings(path, env).settings
    assert s.orchestrator.http_pull_token is not None
    assert s.orchestrator.http_pull_token.get_secret_value() == "from-env"
    assert s.server.admin_token is not None and s.server.admin_token.get_secret_value() == "adm"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[server]\nport = "eighty"\n', "server.port: Input should be a valid integer"),
        (
            "[orchestrator]\ntask_timeout_secs = 0\n",
            "orchestrator.task_timeout_secs: Input should be greater than 0",
        ),
        (
            '[[hosts]]\nhost_id = "../x"\nhostname = "h"\nwork_dir = "/w"\n',
            "hosts.0.host_id: String should match pattern",
        ),
        (
            '[[hosts]]\nhost_id = "a"\nhostname = "h"\nwork_dir = "/w"\n'
            '[[hosts]]\nhost_id = "a"\nhostname = "h2"\nwork_dir = "/w"\n',
            "duplicate host_id 'a'",
        ),
        ("[server\nport = 1\n", "invalid TOML"),
    ],
)
def test_errors_name_file_key_and_reason(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {})
    assert str(caught.value).startswith(f"{path}: ")
    assert expected in str(caught.value)


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_settings(tmp_path / "nope.toml", {})


def test_a_misspelt_key_is_an_error_that_suggests_the_right_one(tmp_path: Path) -> None:
    """The audit's finding 12: `http_pul_token` was a warning, and the server started open."""
    path = write(
        tmp_path,
        '[server]\nbnd = "0.0.0.0"\nhttp_pull_token = "x" \n'
        '[orchestrator]\nhttp_pul_token = "pull-token-0123456789"\n[sever]\nport = 1\n',
    )
    with pytest.raises(ConfigError) as caught:
        load_settings(path, {})
    assert str(caught.value).splitlines() == [
        f"{path}: server.bnd: unknown key (did you mean 'bind'?)",
        f"{path}: server.http_pull_token: unknown key (it belongs in [orchestrator])",
        f"{path}: orchestrator.http_pul_token: unknown key (did you mean 'http_pull_token'?)",
        f"{path}: sever: unknown key (did you mean 'server'?)",
    ]


def test_every_key_the_models_declare_is_allowed() -> None:
    """The allowed set is the models': a key another change adds to them is accepted."""
    for section, info in Settings.model_fields.items():
        model = info.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue
        for key in model.model_fields:
            assert check_keys({section: {key: None}}, Settings).errors == [], f"{section}.{key}"


def test_keys_of_the_original_that_we_ignore_are_notes(tmp_path: Path) -> None:
    path = write(tmp_path, '[matrix]\nhomeserver = "https://matrix.example"\nroom = "!r"\n')
    loaded = load_settings(path, {})
    assert loaded.notes == [
        f"{path}: matrix: a key of the original service, ignored here: "
        + ORIGINAL_IGNORED["matrix"]
    ]
    assert loaded.warnings == []


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ("server", "admin_token"),
        ("orchestrator", "http_pull_token"),
        ("forgejo", "token"),
        ("forgejo", "webhook_secret"),
    ],
)
@pytest.mark.parametrize("blank", ["", "   ", "\t\n"])
def test_an_empty_secret_is_an_error_naming_its_key(
    tmp_path: Path, section: str, key: str, blank: str
) -> None:
    """The audit's finding 5: `admin_token = ""` read as "no token" and left the server open."""
    path = write(tmp_path, f"[{section}]\n{key} = {blank!r}\n".replace("'", '"'))
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: {section}\.{key}: an empty"):
        load_settings(path, {})


def test_a_blank_secret_from_the_environment_is_an_error_too() -> None:
    with pytest.raises(ConfigError, match=r"orchestrator\.http_pull_token: an empty secret"):
        load_settings(None, {"AGENT_FLEET_HTTP_PULL_TOKEN": "  "})


def test_a_short_token_is_a_warning(tmp_path: Path) -> None:
    path = write(tmp_path, '[server]\nadmin_token = "short-token"\n')
    loaded = load_settings(path, {})
    assert loaded.warnings == [
        f"{path}: server.admin_token is only 11 characters long; use at least 16 "
        "(for example: openssl rand -hex 32)"
    ]


def test_a_host_agent_type_must_say_how_it_runs(tmp_path: Path) -> None:
    host = (
        '[[hosts]]\nhost_id = "h"\nhostname = "localhost"\nwork_dir = "/w"\n'
        'agents = [{agent_type = "%s"}]\n'
    )
    with pytest.raises(
        ConfigError, match=r"'mystery' is neither built in .* nor an \[agent_types\]"
    ):
        load_settings(write(tmp_path, host % "mystery"), {})
    assert load_settings(write(tmp_path, host % "codex"), {}).settings.hosts[0].agents
    mine = host % "mine" + '[agent_types.mine]\ncommand = ["mine", "{prompt_file}"]\n'
    assert load_settings(write(tmp_path, mine), {}).settings.agent_types["mine"]


def test_named_tables_are_checked_per_name(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[agent_types.mine]\ncommand = ["x"]\n[agent_types.other]\ncommand = ["y"]\nargs = 1\n',
    )
    with pytest.raises(ConfigError, match=r"agent_types\.other\.args: unknown key$"):
        load_settings(path, {})


def test_passwords_in_urls_are_redacted() -> None:
    env = {"AGENT_FLEET_DB_URL": "postgresql://fleet:hunter2@db/fleet"}
    shown = render_toml(redacted(load_settings(None, env).settings))
    assert "hunter2" not in shown and "postgresql://***@db/fleet" in shown
