"""The original's config: its agent type names and its `[adapters]` CLI templates run here,
without a shell and without the prompt on a command line."""

from pathlib import Path

import pytest

from agent_fleet.adapters.base import RunSpec
from agent_fleet.adapters.catalog import adapter_for
from agent_fleet.adapters.claude import ClaudeAdapter
from agent_fleet.adapters.codex import CodexAdapter
from agent_fleet.bootstrap import agent_type_adapter
from agent_fleet.config import ConfigError, LoadedSettings, load_settings

SPEC = RunSpec(
    workspace="/w/t1/attempt-0/work",
    prompt_file="/w/t1/attempt-0/meta/prompt.md",
    receipt_file="/w/r.json",
    task_id="t1",
    branch="task/t1",
    repo="acme/app",
)
HOST = """
[[hosts]]
host_id = "wsl"
hostname = "localhost"
work_dir = "/srv/work"
agents = [{ agent_type = "%s", max_concurrency = 1, capabilities = ["code:rust"] }]
"""


def load(tmp_path: Path, text: str) -> LoadedSettings:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return load_settings(path, {})


@pytest.mark.parametrize(
    ("agent_type", "adapter"),
    [("codex-cli", CodexAdapter), ("claude-code", ClaudeAdapter)],
)
def test_the_original_agent_type_names_run_our_built_in_adapters(
    tmp_path: Path, agent_type: str, adapter: type
) -> None:
    settings = load(tmp_path, HOST % agent_type).settings
    assert settings.hosts[0].agents[0].agent_type == agent_type
    assert settings.agent_types == {}
    assert isinstance(adapter_for(agent_type), adapter)


@pytest.mark.parametrize(
    ("name", "template"),
    [
        ("codex-cli", "codex exec --json '{prompt}'"),
        (
            "claude-code",
            "claude -p '{prompt}' --output-format json --dangerously-skip-permissions",
        ),
    ],
)
def test_the_original_built_in_templates_are_ours(tmp_path: Path, name: str, template: str) -> None:
    text = f'[adapters.{name}]\ncli_template = "{template}"\ntimeout = 3600\n' + HOST % name
    loaded = load(tmp_path, text)
    assert loaded.settings.agent_types == {}  # no argv template: the built-in adapter runs it
    assert any(f"adapters.{name}: the original's built-in template" in w for w in loaded.notes)
    assert any(f"adapters.{name}.timeout: not used" in w for w in loaded.notes)


def test_a_custom_template_becomes_an_argv_and_the_prompt_a_file(tmp_path: Path) -> None:
    text = (
        "[adapters.opencode]\n"
        "cli_template = \"opencode run --format json --title 'task {task_id}' '{prompt}'\"\n"
        'work_dir = "{repo_path}"\n'
        'output_parser = "raw"\n' + HOST % "opencode"
    )
    loaded = load(tmp_path, text)
    command = loaded.settings.agent_types["opencode"].command
    head = ["opencode", "run", "--format", "json", "--title"]
    assert command == [*head, "task {task_id}", "{prompt_file}"]
    assert adapter_for("opencode", command).argv(SPEC) == [*head, "task t1", SPEC.prompt_file]
    notes = "\n".join(loaded.notes)
    assert "runs as the argv opencode run" in notes
    assert "adapters.opencode.output_parser/output_format: not used" in notes
    assert not any("work_dir" in w for w in loaded.notes)  # {repo_path} is our workspace
    # The ssh_cli runner gets the mapped command too.
    ssh_cli = agent_type_adapter(loaded.settings, "opencode")
    assert ssh_cli.argv(SPEC) == [*head, "task t1", SPEC.prompt_file]


def test_literal_braces_and_other_placeholders(tmp_path: Path) -> None:
    text = (
        "[adapters.tool]\n"
        'cli_template = "tool --cfg \'{\\"x\\": 1}\' --cd {work_dir} --branch {branch_name} '
        'in={prompt}"\n'
    )
    command = load(tmp_path, text).settings.agent_types["tool"].command
    argv = adapter_for("tool", command).argv(SPEC)
    assert argv == [
        "tool",
        "--cfg",
        '{"x": 1}',
        "--cd",
        SPEC.workspace,
        "--branch",
        "task/t1",
        f"in={SPEC.prompt_file}",
    ]


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("mycli '{prompt}' | tee out.log", "'|'"),
        ("mycli '{prompt}' > out.log", "'>'"),
        ("cd /src && mycli '{prompt}'", "'&'"),
        ('mycli "$HOME" {prompt}', "'$'"),
        ("mycli `id` {prompt}", "'`'"),
        ("mycli '{prompt}", "cannot be split"),
        ("mycli {secret}", "{secret}"),
    ],
)
def test_what_needs_a_shell_is_refused_with_the_key(
    tmp_path: Path, template: str, reason: str
) -> None:
    text = f"[adapters.mine]\ncli_template = '''{template}'''\n"
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    assert "adapters.mine.cli_template" in str(caught.value)
    assert reason in str(caught.value)


def test_single_quotes_keep_a_dollar_literal(tmp_path: Path) -> None:
    text = "[adapters.mine]\ncli_template = \"mycli --price '$5' {prompt}\"\n"
    command = load(tmp_path, text).settings.agent_types["mine"].command
    assert command == ["mycli", "--price", "$5", "{prompt_file}"]


def test_one_name_in_adapters_and_agent_types_is_refused(tmp_path: Path) -> None:
    text = (
        "[adapters.mine]\ncli_template = \"mycli '{prompt}'\"\n"
        '[agent_types.mine]\ncommand = ["mycli", "{prompt_file}"]\n'
    )
    with pytest.raises(ConfigError, match=r"\[adapters.mine\] and \[agent_types.mine\]"):
        load(tmp_path, text)


def test_a_host_type_with_no_adapter_names_both_tables(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'hermes' is neither built in .* \[adapters\]"):
        load(tmp_path, HOST % "hermes")


def test_a_built_in_template_leaves_agent_types_free_to_tune_that_type(tmp_path: Path) -> None:
    text = (
        "[adapters.codex-cli]\ncli_template = \"codex exec --json '{prompt}'\"\n"
        '[agent_types.codex-cli]\ncommand = ["codex", "exec", "--json", "-"]\n'
    )
    settings = load(tmp_path, text).settings  # not a conflict: the adapter defines no argv
    assert settings.agent_types["codex-cli"].command == ["codex", "exec", "--json", "-"]
