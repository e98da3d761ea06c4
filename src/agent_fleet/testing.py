"""Test doubles held to the ports' contracts: the in-memory event store, a forge in
dictionaries, and clocks you steer.

`InMemoryEventStore` (`store/memory.py`) runs the same contract suite as the SQL stores
(`tests/contract/`), so a service test that passes on it means what it says.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from agent_fleet.domain.errors import ForgeError, PullRequestRefused
from agent_fleet.ports.forge import ForgeIssue, ForgePull
from agent_fleet.store.memory import InMemoryEventStore

if TYPE_CHECKING:
    from agent_fleet.ports.forge import Forge

__all__ = ["EPOCH", "FixedClock", "InMemoryEventStore", "InMemoryForge", "ManualClock"]

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


class ManualClock:
    """A clock that moves only when the test says so (`advance`); starts at 2026-01-01 UTC."""

    def __init__(self, start: datetime = EPOCH) -> None:
        if start.tzinfo is None:
            raise ValueError(f"naive datetime {start}: the fleet keeps time in UTC")
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        if delta < timedelta(0):
            raise ValueError(f"a clock does not run backwards ({delta})")
        self._now += delta
        return self._now


@dataclass(frozen=True, slots=True)
class FixedClock:
    """A clock that always says the same time."""

    at: datetime = EPOCH

    def now(self) -> datetime:
        return self.at


@dataclass
class InMemoryForge:
    """The `Forge` port in dictionaries, answering as `ForgejoClient` does. Issues that do
    not exist refuse comments (False), like Forgejo's 404; `fail_next` makes the next calls
    raise `ForgeError` (an outage); `refuse` makes `create_pull` raise PullRequestRefused
    with that reason; `calls` lists what was asked, `bases` the base of each PR opened."""

    writers: set[tuple[str, str]] = field(default_factory=set)  # (repo, user)
    pulls: dict[tuple[str, int], ForgePull] = field(default_factory=dict)
    issues: dict[str, list[ForgeIssue]] = field(default_factory=dict)  # repo → open issues
    labellers: dict[tuple[str, int], str] = field(default_factory=dict)
    comments: dict[tuple[str, int], list[str]] = field(default_factory=dict)
    fail_next: int = 0
    refuse: str | None = None
    calls: list[str] = field(default_factory=list)
    bases: list[str] = field(default_factory=list)

    def _call(self, what: str) -> None:
        self.calls.append(what)
        if self.fail_next > 0:
            self.fail_next -= 1
            raise ForgeError(what, "500 from the forge")

    def open_issue(self, repo: str, number: int, labels: tuple[str, ...], by: str) -> None:
        issue = ForgeIssue(
            repo=repo,
            number=number,
            title=f"issue {number}",
            body="the body",
            url=f"https://forge.example/{repo}/issues/{number}",
            labels=labels,
        )
        self.issues.setdefault(repo, []).append(issue)
        self.labellers[(repo, number)] = by
        self.comments.setdefault((repo, number), [])

    def pull(self, repo: str, number: int, branch: str, **state: Any) -> ForgePull:
        pr = ForgePull(
            number=number,
            url=f"https://forge.example/{repo}/pulls/{number}",
            head_branch=branch,
            body=state.pop("body", ""),
            merged=state.pop("merged", False),
            closed=state.pop("closed", False),
            head_repo=state.pop("head_repo", repo),
        )
        self.pulls[(repo, number)] = pr
        return pr

    async def can_write(self, repo: str, user: str) -> bool:
        self._call(f"can_write {repo} {user}")
        return (repo, user) in self.writers

    async def pull_request_info(self, repo: str, number: int) -> ForgePull | None:
        self._call(f"pull {repo}#{number}")
        return self.pulls.get((repo, number))

    async def open_pull_from(self, repo: str, branch: str) -> ForgePull | None:
        self._call(f"open pull {repo}:{branch}")
        return next(
            (
                pr
                for (where, _), pr in self.pulls.items()
                if where == repo
                and pr.head_branch == branch
                and pr.head_repo == repo
                and not pr.closed
            ),
            None,
        )

    async def default_branch(self, repo: str) -> str:
        self._call(f"default branch {repo}")
        return "main"

    async def create_pull(
        self, repo: str, *, head: str, base: str, title: str, body: str
    ) -> ForgePull:
        self._call(f"create pull {repo}:{head}")
        if self.refuse:
            raise PullRequestRefused(repo, self.refuse)
        self.bases.append(base)
        number = 1 + max((n for (where, n) in self.pulls if where == repo), default=99)
        return self.pull(repo, number, head, body=body)

    async def comment(self, repo: str, number: int, body: str) -> bool:
        self._call(f"comment {repo}#{number}")
        if (repo, number) not in self.comments:
            return False
        self.comments[(repo, number)].append(body)
        return True

    async def comment_bodies(self, repo: str, number: int) -> list[str]:
        self._call(f"comments {repo}#{number}")
        return list(self.comments.get((repo, number), []))

    async def open_issues(self, repo: str) -> list[ForgeIssue]:
        self._call(f"issues {repo}")
        return list(self.issues.get(repo, []))

    async def labelled_by(self, repo: str, number: int, prefix: str) -> str | None:
        self._call(f"labelled_by {repo}#{number}")
        return self.labellers.get((repo, number))

    async def repos(self) -> list[str]:
        self._call("repos")
        return sorted(self.issues)

    async def close(self) -> None:
        return None


if TYPE_CHECKING:  # mypy proves the fake satisfies the port
    _conforms: Forge = InMemoryForge()
