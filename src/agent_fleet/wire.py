"""A receipt as it travels as JSON: the receipt file a CLI writes and the body an agent posts
(`ReceiptWire`, with its usage and artifacts); artifacts of any type, kept as given.

Only `pr` artifacts drive validation and the PR lifecycle, so only they are checked
strictly: a `pr` needs an http(s) `url`, else the receipt is refused (422). Any other
artifact never costs its receipt:

- `type` is kept as given (cut to 64 characters); without one it is `"unknown"`;
- a known field that is malformed is dropped (`url` must be http(s): it is shown as a
  link; `sha` must be hex), long text is cut to 1,000 characters;
- other fields are kept in `extra`: at most 16, keys of letters, digits, `_.-`, values
  that are strings, booleans, integers up to 2^53 or finite numbers; the rest is dropped;
- a bare string is a file path (or a `link` when it is an http(s) URL);
- `null` items and anything else that is not an object are dropped.
"""

import math
import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from agent_fleet.domain.states import ReceiptStatus
from agent_fleet.domain.values import Artifact, ExtraValue, Usage

MAX_ARTIFACTS = 100
MAX_EXTRA_FIELDS = 16
MAX_TYPE_CHARS = 64
MAX_TEXT_CHARS = 1_000
MAX_URL_CHARS = 2_000
MAX_EXACT_INT = 2**53
#: Tokens and dollars: generous, but within what every store and JSON reader holds.
MAX_TOKENS = 10**15
MAX_COST_USD = 10**9
#: A receipt file's summary and error (a posted receipt's are capped by the server's config).
MAX_RECEIPT_TEXT_CHARS = 100_000
_URL = re.compile(r"^https?://\S+$")
_SHA = re.compile(r"^[0-9a-fA-F]{4,64}$")
_KEY = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
_TEXT_FIELDS = ("branch", "name", "path")
_KNOWN = frozenset({"type", "url", "sha", *_TEXT_FIELDS})


class ArtifactBody(BaseModel):
    """One artifact after `as_given`: every field already bounded."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    type: str
    url: str | None = None
    sha: str | None = None
    branch: str | None = None
    name: str | None = None
    path: str | None = None
    extra: dict[str, ExtraValue] = Field(default_factory=dict)

    def to_artifact(self) -> Artifact:
        return Artifact(
            type=self.type,
            url=self.url,
            sha=self.sha,
            branch=self.branch,
            name=self.name,
            path=self.path,
            extra=dict(self.extra),
        )


def as_given(item: dict[str, Any] | str) -> dict[str, Any]:
    """An artifact object (or bare string) as the fields we keep; raises only for a bad `pr`."""
    if isinstance(item, str):
        if len(item) <= MAX_URL_CHARS and _URL.match(item):
            return {"type": "link", "url": item}
        return {"type": "file", "path": item[:MAX_TEXT_CHARS]}
    kind = item.get("type")
    kept: dict[str, Any] = {
        "type": kind[:MAX_TYPE_CHARS] if isinstance(kind, str) and kind.strip() else "unknown"
    }
    url = item.get("url")
    if isinstance(url, str) and len(url) <= MAX_URL_CHARS and _URL.match(url):
        kept["url"] = url
    elif kept["type"] == "pr":
        raise ValueError("a pr artifact needs an http(s) url")
    sha = item.get("sha")
    if isinstance(sha, str) and _SHA.match(sha):
        kept["sha"] = sha
    for key in _TEXT_FIELDS:
        value = item.get(key)
        if isinstance(value, str):
            kept[key] = value[:MAX_TEXT_CHARS]
    kept["extra"] = _extra(item)
    return kept


def _extra(item: dict[str, Any]) -> dict[str, ExtraValue]:
    """The unknown fields, and those of an `extra` object (our own replies, sent back)."""
    given = item.get("extra")
    pairs = [*(given.items() if isinstance(given, dict) else ()), *item.items()]
    extra: dict[str, ExtraValue] = {}
    for key, value in pairs:
        if len(extra) >= MAX_EXTRA_FIELDS:
            break
        if key in _KNOWN or key == "extra" or not isinstance(key, str) or not _KEY.match(key):
            continue
        scalar = _scalar(value)
        if scalar is not None:
            extra[key] = scalar
    return extra


def _scalar(value: Any) -> ExtraValue | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if abs(value) <= MAX_EXACT_INT else None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return value[:MAX_TEXT_CHARS]
    return None


def _artifact_list(value: Any) -> Any:
    """Objects and strings become artifacts; `null` and other items are dropped."""
    if value is None:
        return []
    if not isinstance(value, list):
        return value  # not a list at all: the receipt is malformed (422)
    return [as_given(item) for item in value if isinstance(item, dict | str)]


#: A receipt's `artifacts` field, for the API's bodies and the receipt files runs write.
Artifacts = Annotated[
    list[ArtifactBody], BeforeValidator(_artifact_list), Field(max_length=MAX_ARTIFACTS)
]


class UsageWire(BaseModel):
    """What an attempt consumed, as a receipt reports it (None: not reported)."""

    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)

    tokens: int | None = Field(default=None, ge=0, le=MAX_TOKENS)
    cost_usd: float | None = Field(default=None, ge=0, le=MAX_COST_USD)
    input_tokens: int | None = Field(default=None, ge=0, le=MAX_TOKENS)
    output_tokens: int | None = Field(default=None, ge=0, le=MAX_TOKENS)
    cache_read_tokens: int | None = Field(default=None, ge=0, le=MAX_TOKENS)
    cache_write_tokens: int | None = Field(default=None, ge=0, le=MAX_TOKENS)

    def to_usage(self) -> Usage:
        return Usage(**self.model_dump())


class ReceiptWire(BaseModel):
    """A run's own account of itself: what the receipt file says, and what a posted receipt
    says besides who sends it (`api/schemas.ReceiptBody` adds that, and the server's caps)."""

    model_config = ConfigDict(extra="ignore", frozen=True, allow_inf_nan=False)

    status: ReceiptStatus = ReceiptStatus.COMPLETED
    summary: str = Field(default="", max_length=MAX_RECEIPT_TEXT_CHARS)
    artifacts: Artifacts = Field(default_factory=list)
    error: str | None = Field(default=None, max_length=MAX_RECEIPT_TEXT_CHARS)
    usage: UsageWire | None = None
