"""aider in one-shot mode: the message from the prompt file, plain-text output. Checked
against aider 0.86.2.

aider exits 0 even when every model call failed, so the verdict comes from what it
printed: an applied edit ("Applied edit to F") or a commit ("Commit <sha> <message>"),
and no `litellm.<Name>Error` / "Connection error" after it. Its usage lines look like

    Tokens: 1.2k sent, 34 received.
    Tokens: 9.8k sent, 1.2k cache hit, 312 received. Cost: $0.03 message, $0.10 session.
    Tokens: 12k sent, 3.4k cache write, 1.2k cache hit, 345 received.
    Cost: $0.04 message, $0.14 session.

with counts rounded above 999 ("1.5k", "12k"), cache parts only when there were any,
and the cost only for a model with known prices (on the next line when both cache parts
are there). One line per model reply; the session cost of the last one is the total.
"""

import re

from agent_fleet.adapters.base import CliOutcome, PlainText, RunSpec, find_pr_urls, tail, usage_of
from agent_fleet.domain.values import Usage

_COUNT = r"([\d.,]+)\s*([kKmM]?)"
_TOKENS = re.compile(
    rf"Tokens:\s*{_COUNT}\s*sent"
    rf"(?:,\s*{_COUNT}\s*cache write)?"
    rf"(?:,\s*{_COUNT}\s*cache hit)?"
    rf",\s*{_COUNT}\s*received",
    re.I,
)
_COST = re.compile(r"Cost:\s*\$([\d.]+)\s*message,\s*\$([\d.]+)\s*session", re.I)
_DONE = re.compile(r"^(Applied edit to \S.*|Commit [0-9a-f]{7,40} .*)$")
_FAILED = re.compile(r"^(litellm\.\w*(Error|Exception)\b.*|.*\bConnection error\b.*)$", re.I)
_REPLY_STARTS = ("Repo-map:", "Tokens:", "https://aider.chat/HISTORY.html")
# An edit block: fenced, or aider's bare SEARCH/REPLACE; the line before it names the file.
_BLOCKS = {"```": "```", "<<<<<<< SEARCH": ">>>>>>> REPLACE"}
_BLOCK_OPENERS = tuple(_BLOCKS)


class AiderAdapter(PlainText):
    name = "aider"

    def argv(self, spec: RunSpec) -> list[str]:
        return [
            "aider",
            "--message-file",
            spec.prompt_file,
            "--yes-always",
            "--no-pretty",
            "--no-stream",
            "--no-check-update",
        ]

    def version_argv(self) -> list[str]:
        return ["aider", "--version"]

    def read_outcome(self, output: str, exit_code: int) -> CliOutcome:
        lines = output.splitlines()
        done = [i for i, line in enumerate(lines) if _DONE.match(line.strip())]
        failed = [i for i, line in enumerate(lines) if _FAILED.match(line.strip())]
        error = gave_up = None
        if failed and (not done or failed[-1] > done[-1]):
            error = gave_up = _error_block(lines, failed[-1])
        elif not done:
            error = "aider applied no edit and made no commit"
        reply = _reply(lines)
        return CliOutcome(
            summary="\n".join([*reply, *(lines[i].strip() for i in done)])
            or gave_up
            or tail(output),
            pr_urls=find_pr_urls(output),
            usage=_usage(output),
            error=error,
        )


def _usage(output: str) -> Usage | None:
    sent = received = cache_write = cache_hit = None
    for match in _TOKENS.finditer(output):
        sent = (sent or 0) + _count(match.group(1), match.group(2))
        received = (received or 0) + _count(match.group(7), match.group(8))
        if match.group(3):
            cache_write = (cache_write or 0) + _count(match.group(3), match.group(4))
        if match.group(5):
            cache_hit = (cache_hit or 0) + _count(match.group(5), match.group(6))
    costs = _COST.findall(output)
    return usage_of(
        input_tokens=sent,
        output_tokens=received,
        cache_read=cache_hit,
        cache_write=cache_write,
        cost_usd=float(costs[-1][1]) if costs else None,
    )


def _count(number: str, unit: str) -> int:
    """aider's rounded counts: "345", "1.5k", "12k" (and "1,234" from older releases)."""
    value = float(number.replace(",", ""))
    scale = {"": 1, "k": 1_000, "m": 1_000_000}[unit.lower()]
    return round(value * scale)


def _error_block(lines: list[str], start: int) -> str:
    """The error line with its wrapped continuation, up to the next blank line."""
    block = []
    for line in lines[start:]:
        if not line.strip():
            break
        block.append(line.strip())
    return " ".join(block)[:2000]


def _reply(lines: list[str]) -> list[str]:
    """The prose of the model's last reply: after the banner (or the previous usage line)
    and before its usage line, without the fenced edit blocks and their file names."""
    ends = [i for i, line in enumerate(lines) if line.startswith("Tokens:")]
    if not ends:
        return []
    end = ends[-1]
    start = max(
        (i for i, line in enumerate(lines[:end]) if line.startswith(_REPLY_STARTS)), default=-1
    )
    body = lines[start + 1 : end]
    prose: list[str] = []
    closer: str | None = None  # what ends the edit block we are in
    for i, line in enumerate(body):
        if closer is not None:
            closer = None if line.startswith(closer) else closer
            continue
        if line.startswith(_BLOCK_OPENERS):
            closer = _BLOCKS[next(o for o in _BLOCK_OPENERS if line.startswith(o))]
            continue
        following = [later for later in body[i + 1 : i + 3] if later.strip()]
        names_a_file = bool(following) and following[0].startswith(_BLOCK_OPENERS)
        if line.strip() and not names_a_file:
            prose.append(line.strip())
    return prose
