"""The delivery script against real git remotes: commit what the CLI left, push `task/<id>`
without ever forcing, list the files changed, and keep credentials to git alone."""

import asyncio
import os
import subprocess
from pathlib import Path

import pytest

from agent_fleet.execution import workspace as workspaces
from agent_fleet.execution.delivery import Delivery, DeliveryStatus
from agent_fleet.worker import delivery
from agent_fleet.worker.delivery import GitOptions
from tests.git_remote import (
    branch_sha,
    git,
    git_http,
    http_url,
    make_origin,
    push_commit,
    refuse_pushes,
)

TASK = "t-42"
BRANCH = f"task/{TASK}"
HOSTILE_TITLE = "$(touch PWNED) `touch PWNED2`; rm -rf ~ #\nsecond line"


def task(title: str = "Fix the export") -> dict[str, str]:
    return {"task_id": TASK, "branch_name": BRANCH, "title": title, "prompt": "p"}


class Run:
    """One attempt's workspace, set up as the pull runner sets it up."""

    def __init__(self, tmp: Path, clone: str | None, attempt: int = 0, **git_options: str) -> None:
        self.work_dir = tmp / "agent-work"
        self.work_dir.mkdir(exist_ok=True)
        self.ws = workspaces.workspace_for(self.work_dir, TASK, attempt)
        self.clone = clone
        self.options = GitOptions(**git_options)  # type: ignore[arg-type]
        self.env = delivery.git_environment(dict(os.environ), self.options, self.work_dir)
        self.output = bytearray()

    async def prepare(self, title: str = "Fix the export") -> Path:
        await workspaces.prepare(self.ws, "p", self.clone, BRANCH, self.env)
        await delivery.write_plan(self.ws, self.clone, task(title), self.options)
        return self.ws.work

    async def deliver(self) -> Delivery:
        async def collect(piece: bytes) -> None:
            self.output += piece

        return await delivery.deliver(self.ws, self.env, collect)


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_what_the_cli_left_uncommitted_is_committed_and_pushed(tmp_path: Path) -> None:
    origin = make_origin(tmp_path / "forge", "acme/widgets")
    attempt = Run(
        tmp_path, f"file://{origin}", author_name="Fleet Bot", author_email="bot@x.example"
    )
    work = run(attempt.prepare(HOSTILE_TITLE))
    (work / "README.md").write_text("widgets, fixed\n")
    (work / "src").mkdir()
    (work / "src" / "new file.py").write_text("print('hi')\n")

    done = run(attempt.deliver())

    assert done.status is DeliveryStatus.PUSHED, (done, attempt.output)
    assert done.sha == branch_sha(origin, BRANCH)
    assert sorted(done.files) == ["README.md", "src/new file.py"]
    log = git("--git-dir", str(origin), "log", "-1", "--format=%an <%ae>%n%B", BRANCH)
    assert log.startswith("Fleet Bot <bot@x.example>")
    assert "$(touch PWNED) `touch PWNED2`; rm -rf ~ #" in log  # the title, as data
    assert "second line" not in log and f"agent-fleet task {TASK}" in log
    assert not list(tmp_path.rglob("PWNED*")), "the title was executed"
    assert f"pushed {BRANCH}" in attempt.output.decode()


def test_the_clis_own_commits_carry_the_bot_identity_and_its_scratch_files_stay_out(
    tmp_path: Path,
) -> None:
    origin = make_origin(tmp_path / "forge", "acme/widgets")
    attempt = Run(
        tmp_path, f"file://{origin}", author_name="Fleet Bot", author_email="bot@x.example"
    )
    work = run(attempt.prepare())
    # What aider does: its chat history and tags cache in the workspace, and a commit of
    # its edit with whatever identity the repository has (no -c, no environment).
    (work / ".aider.chat.history.md").write_text("# aider chat\n")
    (work / ".aider.tags.cache.v4").mkdir()
    (work / ".aider.tags.cache.v4" / "cache.db").write_bytes(b"\0")
    (work / "fix.txt").write_text("the fix\n")
    ignored = git("check-ignore", ".aider", cwd=work, check=False)
    assert ignored == ".aider"  # aider asks git, finds `.aider*` ignored, leaves .gitignore alone
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    subprocess.run(["git", "add", "fix.txt"], cwd=work, check=True)
    subprocess.run(
        ["git", "commit", "-qm", "aider's commit"],
        cwd=work,
        env={**clean, "HOME": str(tmp_path)},
        check=True,
    )

    done = run(attempt.deliver())

    assert done.status is DeliveryStatus.PUSHED, (done, attempt.output)
    assert list(done.files) == ["fix.txt"]
    log = git("--git-dir", str(origin), "log", "--format=%an <%ae>|%s", f"main..{BRANCH}")
    assert log == "Fleet Bot <bot@x.example>|aider's commit"
    tree = git("--git-dir", str(origin), "ls-tree", "-r", "--name-only", BRANCH)
    assert ".aider" not in tree and ".gitignore" not in tree


def test_a_run_that_changed_nothing_delivers_nothing(tmp_path: Path) -> None:
    origin = make_origin(tmp_path / "forge", "acme/widgets")
    attempt = Run(tmp_path, f"file://{origin}")
    run(attempt.prepare())
    done = run(attempt.deliver())
    assert done == Delivery(DeliveryStatus.UNCHANGED, sha=done.sha)
    assert branch_sha(origin, BRANCH) is None


def test_a_push_the_remote_refuses_fails_with_its_message(tmp_path: Path) -> None:
    origin = make_origin(tmp_path / "forge", "acme/widgets")
    refuse_pushes(origin, "branch protection: task branches are frozen")
    attempt = Run(tmp_path, f"file://{origin}")
    work = run(attempt.prepare())
    (work / "README.md").write_text("changed\n")
    done = run(attempt.deliver())
    assert done.status is DeliveryStatus.FAILED
    assert done.error is not None and done.error.startswith("git push failed:")
    assert "branch protection: task branches are frozen" in done.error
    assert branch_sha(origin, BRANCH) is None


def test_commits_pushed_meanwhile_are_built_on_never_overwritten(tmp_path: Path) -> None:
    origin = make_origin(tmp_path / "forge", "acme/widgets")
    theirs = push_commit(origin, BRANCH, "NOTES.md", "from a person\n", tmp_path / "person")
    attempt = Run(tmp_path, f"file://{origin}")
    work = run(attempt.prepare())  # starts on the branch as it is now
    person_again = push_commit(
        origin, BRANCH, "MORE.md", "pushed while it ran\n", tmp_path / "person"
    )
    (work / "README.md").write_text("the agent's change\n")

    done = run(attempt.deliver())

    assert done.status is DeliveryStatus.PUSHED, (done, attempt.output)
    history = git("--git-dir", str(origin), "rev-list", BRANCH).split()
    assert theirs in history and person_again in history, "someone's commit was overwritten"
    assert history[0] == done.sha
    assert done.files == ("README.md",)


def test_a_conflict_with_commits_pushed_meanwhile_fails_and_keeps_them(tmp_path: Path) -> None:
    origin = make_origin(tmp_path / "forge", "acme/widgets")
    attempt = Run(tmp_path, f"file://{origin}")
    work = run(attempt.prepare())
    theirs = push_commit(origin, BRANCH, "README.md", "a person's README\n", tmp_path / "person")
    (work / "README.md").write_text("the agent's README\n")
    done = run(attempt.deliver())
    assert done.status is DeliveryStatus.FAILED
    assert done.error is not None and "merging the commits pushed" in done.error
    assert branch_sha(origin, BRANCH) == theirs


def test_a_second_attempt_continues_the_branch(tmp_path: Path) -> None:
    origin = make_origin(tmp_path / "forge", "acme/widgets")
    first = Run(tmp_path, f"file://{origin}", attempt=0)
    (run(first.prepare()) / "a.txt").write_text("one\n")
    one = run(first.deliver())
    second = Run(tmp_path, f"file://{origin}", attempt=1)
    work = run(second.prepare())
    assert (work / "a.txt").read_text() == "one\n"
    (work / "b.txt").write_text("two\n")
    two = run(second.deliver())
    assert two.status is DeliveryStatus.PUSHED and two.files == ("b.txt",)
    assert git("--git-dir", str(origin), "merge-base", "--is-ancestor", str(one.sha), BRANCH) == ""
    # A later attempt that adds nothing still names the branch: the work is on it.
    third = Run(tmp_path, f"file://{origin}", attempt=2)
    run(third.prepare())
    again = run(third.deliver())
    assert again.status is DeliveryStatus.PUSHED and again.sha == two.sha and again.files == ()


def test_hooks_and_helpers_the_cli_planted_never_run(tmp_path: Path) -> None:
    origin = make_origin(tmp_path / "forge", "acme/widgets")
    attempt = Run(tmp_path, f"file://{origin}")
    work = run(attempt.prepare())
    marker = tmp_path / "hook-ran"
    for hook in ("pre-commit", "commit-msg", "pre-push", "post-commit"):
        path = work / ".git" / "hooks" / hook
        path.write_text(f"#!/bin/sh\necho {hook} >> '{marker}'\n")
        path.chmod(0o755)
    git("config", "credential.helper", f"!f() {{ cat >> '{marker}'; }}; f", cwd=work)
    git("config", "core.fsmonitor", f"echo fsmonitor >> '{marker}'", cwd=work)
    (work / "README.md").write_text("changed\n")
    done = run(attempt.deliver())
    assert done.status is DeliveryStatus.PUSHED, (done, attempt.output)
    assert not marker.exists(), marker.read_text()


def test_without_a_repository_the_files_left_are_listed(tmp_path: Path) -> None:
    attempt = Run(tmp_path, None)
    work = run(attempt.prepare())
    (work / "report.md").write_text("done\n")
    (work / "out").mkdir()
    (work / "out" / "data.csv").write_text("1,2\n")
    done = run(attempt.deliver())
    assert done.status is DeliveryStatus.LISTED
    assert sorted(done.files) == ["out/data.csv", "report.md"]


def test_a_token_pushes_over_https_through_askpass_and_nowhere_else(tmp_path: Path) -> None:
    token = "gitea-token-0d5f3c9a7b1e4f2a"
    root = tmp_path / "forge"
    origin = make_origin(root, "acme/widgets")
    with git_http(root, "fleet-bot", token) as server:
        attempt = Run(
            tmp_path, f"{http_url(server)}/acme/widgets.git", token=token, username="fleet-bot"
        )
        work = run(attempt.prepare())
        (work / "README.md").write_text("over https\n")
        done = run(attempt.deliver())
        assert server.refused >= 1, "the server never asked for credentials"
    assert done.status is DeliveryStatus.PUSHED, (done, attempt.output)
    assert done.sha == branch_sha(origin, BRANCH)
    on_disk = [
        p for p in attempt.ws.root.rglob("*") if p.is_file() and token.encode() in p.read_bytes()
    ]
    assert on_disk == [], "the token was written into the workspace"
    assert token not in attempt.output.decode()


def test_a_wrong_token_fails_the_push_without_showing_it(tmp_path: Path) -> None:
    root = tmp_path / "forge"
    make_origin(root, "acme/widgets")
    wrong = "wrong-token-7e1f0a2b3c4d"
    with git_http(root, "fleet-bot", "the-right-token-123456") as server:
        url = f"{http_url(server)}/acme/widgets.git"
        attempt = Run(tmp_path, f"file://{root / 'acme/widgets.git'}", token=wrong)
        work = run(attempt.prepare())
        (attempt.ws.meta / "git" / "remote").write_text(url)  # cloned elsewhere, pushes here
        (work / "README.md").write_text("x\n")
        done = run(attempt.deliver())
    assert done.status is DeliveryStatus.FAILED and done.error is not None
    assert "Authentication failed" in done.error or "401" in done.error, done.error
    assert wrong not in done.error and wrong not in attempt.output.decode()


@pytest.mark.usefixtures("sshd")
def test_a_deploy_key_pushes_over_ssh(tmp_path: Path, sshd) -> None:  # type: ignore[no-untyped-def]
    origin = make_origin(tmp_path / "forge", "acme/widgets")
    url = f"ssh://{sshd.user}@127.0.0.1:{sshd.port}{origin}"
    attempt = Run(tmp_path, url, ssh_key=str(sshd.key_path), known_hosts=str(sshd.known_hosts))
    work = run(attempt.prepare())
    (work / "README.md").write_text("over ssh\n")
    done = run(attempt.deliver())
    assert done.status is DeliveryStatus.PUSHED, (done, attempt.output)
    assert done.sha == branch_sha(origin, BRANCH)
