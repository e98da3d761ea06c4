"""Verify a Forgejo webhook over its raw bytes, then read the few fields we act on.

Verification comes first and uses only the raw body: Forgejo's JSON encoder
escapes `<`, `>`, `&` differently from Python's, so re-serialised JSON would
not match. Parsing is tolerant (Forgejo adds fields) but typed.
"""

import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent_fleet.domain.errors import InvalidInput, Unauthorized
from agent_fleet.ports.forge import IssueEvent, PullRequestEvent

#: Where the signature may come, first non-empty one wins. Forgejo sends all three with
#: the same HMAC; `X-Hub-Signature-256` (`sha256=<hex>`) is what GitHub-style senders use.
SIGNATURE_HEADERS = ("x-forgejo-signature", "x-gitea-signature", "x-hub-signature-256")
DELIVERY_HEADERS = ("x-forgejo-delivery", "x-gitea-delivery")
EVENT_HEADERS = ("x-forgejo-event", "x-gitea-event")
_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")
#: IssueJson and pull request numbers: positive, and within the store's 32-bit column.
IssueNumber = Annotated[int, Field(ge=1, le=2**31 - 1)]


def verify_signature(body: bytes, headers: Mapping[str, str], secret: str) -> None:
    """HMAC-SHA256 of the raw body, bare hex or `sha256=<hex>`, compared in constant time.

    A header holds whatever bytes the client sent: anything but 64 hex digits is a
    bad signature before any comparison (`compare_digest` refuses non-ASCII text).
    """
    given = next((headers[h] for h in SIGNATURE_HEADERS if _signature(headers.get(h))), "")
    if not given or not secret:
        raise Unauthorized("missing webhook signature")
    digest = _signature(given)
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not _HEX_SHA256.fullmatch(digest) or not hmac.compare_digest(
        expected.encode(), digest.encode()
    ):
        raise Unauthorized("bad webhook signature")


def _signature(value: str | None) -> str:
    """The hex digest a signature header carries ("" for an empty one: a hook without a
    secret sends `sha256=` with nothing after it)."""
    return (value or "").strip().lower().removeprefix("sha256=")


def header(headers: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    return next((headers[h] for h in names if headers.get(h)), None)


def content_key(event: str, body: bytes) -> str:
    """A redelivery has a new delivery id but the same body: dedupe on content too."""
    return hashlib.sha256(event.encode() + b"\0" + body).hexdigest()


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class LabelJson(_Loose):
    name: str


class UserJson(_Loose):
    login: str


class RepositoryJson(_Loose):
    full_name: str
    html_url: str = ""


class IssueJson(_Loose):
    number: IssueNumber
    title: str
    body: str = ""
    html_url: str = ""
    state: str = "open"
    labels: list[LabelJson] = []
    pull_request: dict[str, Any] | None = None


class BranchJson(_Loose):
    ref: str = ""
    label: str = ""
    # The head's repository: a fork's PR has the fork here (and a bare `label`).
    repo: RepositoryJson | None = None


class PullRequestJson(_Loose):
    number: IssueNumber
    html_url: str = ""
    state: str = "open"
    merged: bool = False
    body: str = ""
    head: BranchJson = BranchJson()


class IssuePayload(_Loose):
    action: str
    issue: IssueJson
    repository: RepositoryJson
    sender: UserJson


class ReviewJson(_Loose):
    type: str = ""
    content: str = ""


class PullRequestPayload(_Loose):
    action: str
    pull_request: PullRequestJson
    repository: RepositoryJson
    sender: UserJson
    review: ReviewJson | None = None  # pull_request_approved / _rejected / _comment


Parsed = IssuePayload | PullRequestPayload | None


def parse(event: str, body: bytes) -> Parsed:
    """The payload for `issues`, `pull_request` and `pull_request_rejected` (a review that
    requested changes) events; None for events we ignore."""
    kind: Literal["issues", "pull_request"] | None = (
        "issues"
        if event == "issues"
        else "pull_request"
        if event in ("pull_request", "pull_request_rejected")
        else None
    )
    if kind is None:
        return None
    model: type[IssuePayload] | type[PullRequestPayload] = (
        IssuePayload if kind == "issues" else PullRequestPayload
    )
    try:
        return model.model_validate_json(body)
    except ValidationError as e:
        first = e.errors()[0] if e.errors() else {"loc": (), "msg": "invalid payload"}
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(f"payload.{where}" if where else "payload", str(first["msg"])) from e


def to_event(payload: IssuePayload | PullRequestPayload) -> IssueEvent | PullRequestEvent:
    """The forge-neutral event the webhook service acts on."""
    repo = payload.repository.full_name
    if isinstance(payload, IssuePayload):
        issue = payload.issue
        return IssueEvent(
            action=payload.action,
            repo=repo,
            number=issue.number,
            title=issue.title,
            body=issue.body,
            url=issue.html_url or None,
            state=issue.state,
            labels=tuple(label.name for label in issue.labels),
            sender=payload.sender.login,
            is_pull=issue.pull_request is not None,
        )
    pr = payload.pull_request
    return PullRequestEvent(
        action=payload.action,
        repo=repo,
        number=pr.number,
        url=pr.html_url,
        branch=pr.head.ref or pr.head.label,
        head_repo=pr.head.repo.full_name if pr.head.repo is not None else "",
        merged=pr.merged,
        state=pr.state,
        sender=payload.sender.login,
        changes_requested=(
            payload.review.content
            if payload.review is not None and payload.review.type.endswith("rejected")
            else None
        ),
    )
