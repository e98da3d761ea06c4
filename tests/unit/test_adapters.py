"""Agent-CLI adapters against recorded outputs of the real CLIs' formats."""

from pathlib import Path

import pytest

from agent_fleet.adapters.base import RunSpec, find_pr_urls
from agent_fleet.adapters.catalog import UnknownAgentType, adapter_for
from agent_fleet.adapters.template import TemplateAdapter
from agent_fleet.domain.errors import InvalidInput

FIXTURES = Path(__file__).with_name("fixtures") / "adapters"
SPEC = RunSpec(
    workspace="/w/t1/attempt-0/work",
    prompt_file="/w/t1/attempt-0/meta/prompt.md",
    receipt_file="/w/r.json",
    task_id="t1",
    branch="task/t1",
    repo="acme/app",
)
EVIL = "x'; rm -rf / #$(id)`id`"


def read(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_codex_reads_the_last_message_and_sums_usage() -> None:
    adapter = adapter_for("codex")
    argv = adapter.argv(SPEC)
    assert argv[:3] == ["codex", "exec", "--json"] and argv[-1] == "-"
    outcome = adapter.read_outcome(read("codex_exec.jsonl"), 0)
    assert outcome.summary.startswith("Pinned the random seed")
    assert outcome.pr_urls == ("https://forge.example/acme/app/pulls/17",)
    assert outcome.usage is not None and outcome.usage.tokens == 24763 + 122
    assert outcome.error is None


def test_claude_reads_result_cost_and_errors() -> None:
    adapter = adapter_for("claude-code")
    assert adapter.argv(SPEC)[:4] == ["claude", "-p", "--output-format", "stream-json"]
    ok = adapter.read_outcome(read("claude_success.json"), 0)
    assert ok.pr_urls == ("https://forge.example/acme/app/pulls/18",)
    assert ok.usage is not None and ok.usage.cost_usd == 0.1834
    # Claude's input_tokens leave out cache reads and writes: shown apart, never added.
    assert ok.usage.tokens == 31 + 1870
    assert (ok.usage.cache_read_tokens, ok.usage.cache_write_tokens) == (88110, 10233)
    failed = adapter.read_outcome(read("claude_error.json"), 1)
    assert failed.error == "error_max_turns" and failed.summary == "error_max_turns"


def test_aider_reads_tokens_and_cost_from_text() -> None:
    adapter = adapter_for("aider")
    argv = adapter.argv(SPEC)
    assert argv[:3] == ["aider", "--message-file", SPEC.prompt_file]
    outcome = adapter.read_outcome(read("aider.txt"), 0)
    assert outcome.usage is not None
    assert outcome.usage.tokens == 9800 + 312 and outcome.usage.cost_usd == 0.03
    assert outcome.summary.splitlines() == [
        "I'll pin the random seed so the test is deterministic.",
        "Applied edit to tests/test_io.py",
        "Commit 4f2a9c1 test: pin random seed in test_io",
    ]
    assert outcome.error is None


@pytest.mark.parametrize("name", ["codex", "claude", "aider"])
def test_garbage_output_falls_back_to_the_tail(name: str) -> None:
    outcome = adapter_for(name).read_outcome("{not json\nSegmentation fault\n", 139)
    assert "Segmentation fault" in outcome.summary


def test_no_prompt_text_on_built_in_command_lines() -> None:
    for name in ("codex", "claude", "aider"):
        assert not any("prompt of" in part for part in adapter_for(name).argv(SPEC))


def test_template_keeps_hostile_values_in_one_argument() -> None:
    adapter = adapter_for("custom", ["run", "--file", "{prompt_file}", "--id={task_id}"])
    spec = RunSpec(
        workspace="/w", prompt_file=EVIL, receipt_file="/r", task_id=EVIL, branch="b", repo=None
    )
    assert adapter.argv(spec) == ["run", "--file", EVIL, f"--id={EVIL}"]


@pytest.mark.parametrize(
    "bad", ["{secret}", "{0}", "{task_id.__class__}", "{task_id!r}", "{prompt_file:>10}"]
)
def test_template_rejects_unknown_placeholders(bad: str) -> None:
    with pytest.raises(InvalidInput):
        TemplateAdapter(["x", bad])


def test_template_reads_a_json_summary_line() -> None:
    adapter = TemplateAdapter(["x"])
    out = adapter.read_outcome(
        'working\n{"summary": "done", "pr_url": "https://f/o/r/pulls/2"}\n', 0
    )
    assert out.summary == "done" and out.pr_urls == ("https://f/o/r/pulls/2",)


def test_unknown_type_without_command_is_refused() -> None:
    with pytest.raises(UnknownAgentType, match="give its command after --"):
        adapter_for("mystery")


def test_pr_urls_are_found_once_in_order() -> None:
    text = "see https://git.example/o/r/pulls/3 and https://github.com/o/r/pull/4, again https://git.example/o/r/pulls/3"
    assert find_pr_urls(text) == (
        "https://git.example/o/r/pulls/3",
        "https://github.com/o/r/pull/4",
    )
