"""The code forge people work in (Forgejo): what the use cases ask of it, and the events
its webhooks bring, in forge-neutral terms."""

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True, kw_only=True)
class ForgePull:
    """A pull request as the forge reports it."""

    number: int
    url: str
    head_branch: str
    body: str
    merged: bool
    closed: bool
    #: The repository the head branch lives in (another one for a fork's PR).
    head_repo: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ForgeIssue:
    repo: str
    number: int
    title: str
    body: str
    url: str | None
    labels: tuple[str, ...]


class Forge(Protocol):
    """The code forge people work in (Forgejo): only what the use cases ask of it."""

    async def can_write(self, repo: str, user: str) -> bool: ...
    async def pull_request_info(self, repo: str, number: int) -> ForgePull | None: ...
    async def open_pull_from(self, repo: str, branch: str) -> ForgePull | None:
        """The open PR whose head is `branch` of `repo` itself (never a fork's)."""
        ...

    async def default_branch(self, repo: str) -> str: ...
    async def create_pull(
        self, repo: str, *, head: str, base: str, title: str, body: str
    ) -> ForgePull:
        """Open a PR; raises PullRequestRefused when the forge will not (no such branch)."""
        ...

    async def comment(self, repo: str, number: int, body: str) -> bool: ...
    async def comment_bodies(self, repo: str, number: int) -> list[str]: ...
    async def open_issues(self, repo: str) -> list[ForgeIssue]: ...
    async def labelled_by(self, repo: str, number: int, prefix: str) -> str | None: ...
    async def repos(self) -> list[str]: ...
    async def close(self) -> None: ...


# --- what the forge's webhooks tell us ----------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class IssueEvent:
    """An issue event from a forge, in the terms we act on."""

    action: str
    repo: str
    number: int
    title: str
    body: str
    url: str | None
    state: str
    labels: tuple[str, ...]
    sender: str = ""
    is_pull: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class PullRequestEvent:
    action: str
    repo: str
    number: int
    url: str
    branch: str
    merged: bool
    state: str
    sender: str = ""
    #: The review's text when it requested changes, else None.
    changes_requested: str | None = None
    #: The repository of the head branch ("" when the payload does not say).
    head_repo: str = ""
