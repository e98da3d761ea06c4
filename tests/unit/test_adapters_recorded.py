"""The adapters against what the real CLIs printed (see fixtures/adapters/README.md)."""

from pathlib import Path

import pytest

from agent_fleet.adapters.base import judge
from agent_fleet.adapters.catalog import adapter_for
from tests.unit.test_adapters import SPEC

FIXTURES = Path(__file__).with_name("fixtures") / "adapters"
FINAL = "Created standin-hello.txt with a greeting."


def outcome_of(agent_type: str, name: str, exit_code: int):  # type: ignore[no-untyped-def]
    text = (FIXTURES / name).read_text()
    adapter = adapter_for(agent_type)
    outcome = adapter.read_outcome(text, exit_code)
    return outcome, judge(outcome, exit_code, text)


@pytest.mark.parametrize("name", ["claude-2.1.197-ok.jsonl", "claude-2.1.332-ok.jsonl"])
def test_claude_success_splits_usage_and_keeps_the_reported_cost(name: str) -> None:
    outcome, verdict = outcome_of("claude", name, 0)
    assert verdict.completed and verdict.summary == FINAL
    usage = outcome.usage
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens) == (2400, 68)
    assert (usage.cache_read_tokens, usage.cache_write_tokens) == (1000, 140)
    assert usage.tokens == 2400 + 68  # cache reads and writes are not added on top
    assert usage.cost_usd is not None and usage.cost_usd > 0


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("claude-2.1.197-down.jsonl", "API Error: Unable to connect to API (ConnectionRefused)"),
        ("claude-2.1.197-401.jsonl", "Invalid API key · Fix external API key"),
        ("claude-2.1.197-401-json-format.json", "Invalid API key · Fix external API key"),
    ],
)
def test_claude_failure_reports_the_result_text_and_no_cost(name: str, message: str) -> None:
    outcome, verdict = outcome_of("claude", name, 1)
    assert not verdict.completed
    assert verdict.error == message  # not "exit code 1: {...raw JSON...}"
    assert outcome.usage is None  # "total_cost_usd": 0 of a failed run is unknown, not free


def test_claude_retry_notices_are_not_progress() -> None:
    adapter = adapter_for("claude")
    lines = (FIXTURES / "claude-2.1.197-down.jsonl").read_text().splitlines()
    assert sum(adapter.is_progress(line) for line in lines) == 3  # init, assistant, result
    assert not adapter.is_progress('{"type":"system","subtype":"api_retry","attempt":1}')
    assert not adapter.is_progress("plain text is no event")


def test_claude_needs_is_sandbox_only_as_root() -> None:
    adapter = adapter_for("claude")
    assert adapter.environment(as_root=True) == {"IS_SANDBOX": "1"}
    assert adapter.environment(as_root=False) == {}


def test_codex_success_reads_the_final_message_and_newer_usage_fields() -> None:
    outcome, verdict = outcome_of("codex", "codex-0.171.0-ok.jsonl", 0)
    assert verdict.completed and verdict.summary == FINAL
    usage = outcome.usage
    assert usage is not None
    # Codex's input_tokens include the cached ones.
    assert (usage.input_tokens, usage.output_tokens, usage.tokens) == (3400, 68, 3468)
    assert (usage.cache_read_tokens, usage.cache_write_tokens) == (1000, 0)
    assert usage.cost_usd is None


def test_codex_warning_items_do_not_fail_a_run() -> None:
    text = (FIXTURES / "codex-0.171.0-ok.jsonl").read_text()
    assert '"type":"error","message":"Model metadata' in text
    outcome, _ = outcome_of("codex", "codex-0.171.0-ok.jsonl", 0)
    assert outcome.error is None


def test_codex_401_fails_with_its_message() -> None:
    _, verdict = outcome_of("codex", "codex-0.171.0-401.jsonl", 1)
    assert not verdict.completed
    assert verdict.error is not None
    assert verdict.error.startswith("unexpected status 401 Unauthorized: Incorrect API key")


def test_codex_reconnect_notices_are_not_progress() -> None:
    adapter = adapter_for("codex")
    lines = (FIXTURES / "codex-0.171.0-down.jsonl").read_text().splitlines()
    progress = [line for line in lines if adapter.is_progress(line)]
    assert len(lines) == 9 and len(progress) == 3  # thread, warning, turn; then only notices
    assert all("Reconnecting" not in line for line in progress)


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("read-only", "read-only"), (None, "workspace-write"), ("danger-full-access", None)],
)
def test_codex_sandbox_mode_is_configurable(mode, expected) -> None:  # type: ignore[no-untyped-def]
    argv = adapter_for("codex", sandbox=mode).argv(SPEC)
    assert "--full-auto" not in argv
    assert argv[argv.index("--sandbox") + 1] == (expected or mode)


def test_aider_success_is_the_applied_edit_and_commit() -> None:
    outcome, verdict = outcome_of("aider", "aider-0.86.2-ok.txt", 0)
    assert verdict.completed
    assert verdict.summary.splitlines() == [
        FINAL,
        "Applied edit to standin-hello.txt",
        "Commit 53086f7 Add standin-hello.txt",
    ]
    assert outcome.usage is not None
    assert (outcome.usage.input_tokens, outcome.usage.output_tokens) == (1200, 34)
    assert outcome.usage.cost_usd is None  # an unknown model: aider prints no cost


@pytest.mark.parametrize(
    ("name", "start"),
    [
        ("aider-0.86.2-401.txt", "litellm.AuthenticationError: AuthenticationError: OpenAI"),
        ("aider-0.86.2-down.txt", "litellm.InternalServerError: InternalServerError: OpenAI"),
    ],
)
def test_aider_exit_0_with_a_final_model_error_is_a_failure(name: str, start: str) -> None:
    outcome, verdict = outcome_of("aider", name, 0)
    assert not verdict.completed
    assert verdict.error is not None and verdict.error.startswith(start)
    assert verdict.summary == verdict.error  # not the banner and warnings
    assert outcome.usage is None


def test_aider_401_message_is_whole() -> None:
    _, verdict = outcome_of("aider", "aider-0.86.2-401.txt", 0)
    assert verdict.error is not None
    assert "Incorrect API key provided: sk-wron*****." in verdict.error
    assert "Check your API key." in verdict.error


def test_aider_error_before_a_later_edit_does_not_fail() -> None:
    text = (
        "litellm.InternalServerError: Connection error.\nRetrying in 0.2 seconds...\n"
        "Done.\nTokens: 2k sent, 10 received.\nApplied edit to a.py\n"
    )
    outcome = adapter_for("aider").read_outcome(text, 0)
    assert outcome.error is None


def test_aider_crashing_after_an_edit_still_fails() -> None:
    text = "Applied edit to a.py\nTraceback (most recent call last):\nKeyboardInterrupt\n"
    outcome = adapter_for("aider").read_outcome(text, 1)
    verdict = judge(outcome, 1, text)
    assert not verdict.completed and verdict.error is not None
    assert verdict.error.startswith("exit code 1:")


def test_aider_without_an_edit_fails_even_on_exit_0() -> None:
    outcome = adapter_for("aider").read_outcome("Tokens: 1k sent, 5 received.\nOK\n", 0)
    verdict = judge(outcome, 0, "")
    assert not verdict.completed and verdict.error == "aider applied no edit and made no commit"


@pytest.mark.parametrize(
    ("line", "sent", "write", "hit", "received", "cost"),
    [
        ("Tokens: 345 sent, 12 received.", 345, None, None, 12, None),
        ("Tokens: 1.5k sent, 999 received.", 1500, None, None, 999, None),
        (
            "Tokens: 12k sent, 3.4k cache write, 1.2k cache hit, 345 received.\n"
            "Cost: $0.04 message, $0.10 session.",
            12000,
            3400,
            1200,
            345,
            0.10,
        ),
        (
            "Tokens: 9.8k sent, 2.1k cache hit, 312 received."
            " Cost: $0.0012 message, $0.0030 session.",
            9800,
            None,
            2100,
            312,
            0.003,
        ),
        (
            "Tokens: 20k sent, 1.1k cache write, 1.0k received."
            " Cost: $0.00 message, $0.00 session.",
            20000,
            1100,
            None,
            1000,
            0.0,
        ),
        ("Tokens: 1,234 sent, 56 received.", 1234, None, None, 56, None),
    ],
)
def test_aider_token_lines_in_every_form(  # type: ignore[no-untyped-def]
    line, sent, write, hit, received, cost
) -> None:
    usage = adapter_for("aider").read_outcome(line + "\nApplied edit to x\n", 0).usage
    assert usage is not None
    assert (usage.input_tokens, usage.cache_write_tokens, usage.cache_read_tokens) == (
        sent,
        write,
        hit,
    )
    assert usage.output_tokens == received and usage.tokens == sent + received
    assert usage.cost_usd == cost


def test_aider_sums_replies_and_takes_the_last_session_cost() -> None:
    text = (
        "Tokens: 2k sent, 10 received. Cost: $0.01 message, $0.01 session.\n"
        "Tokens: 3k sent, 20 received. Cost: $0.02 message, $0.03 session.\n"
        "Applied edit to x\n"
    )
    usage = adapter_for("aider").read_outcome(text, 0).usage
    assert usage is not None and (usage.tokens, usage.cost_usd) == (5030, 0.03)


def test_aider_counts_every_line_as_progress() -> None:
    adapter = adapter_for("aider")
    assert adapter.is_progress("Retrying in 2.0 seconds...")
    assert not adapter.is_progress("   \n")
