"""config.toml: the original's keys, environment secrets, clear errors, redaction."""

from pathlib import Path

import pytest

from agent_fleet.config import ConfigError, load_settings, redacted, render_toml

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
    assert s.heartbeat_timeout_secs == 90
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


def test_unknown_keys_warn_but_load(tmp_path: Path) -> None:
    path = write(tmp_path, '[server]\nlog_level = "debug"\n[telemetry]\nx = 1\n')
    loaded = load_settings(path, {})
    assert loaded.warnings == [
        f"{path}: server.log_level: unknown key, ignored",
        f"{path}: telemetry: unknown key, ignored",
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
    loaded = load_settings(path, {})
    assert loaded.warnings == [f"{path}: agent_types.other.args: unknown key, ignored"]
    assert loaded.settings.agent_types["mine"].command == ["x"]


def test_passwords_in_urls_are_redacted() -> None:
    env = {"AGENT_FLEET_DB_URL": "postgresql://fleet:hunter2@db/fleet"}
    shown = render_toml(redacted(load_settings(None, env).settings))
    assert "hunter2" not in shown and "postgresql://***@db/fleet" in shown
