"""Issue in, pull request out, in both modes: a labelled issue, an agent CLI that only edits
files (tests/e2e/fake_cli.py), a real bare repository as the remote, and the Forgejo
stand-in (which opens PRs only from branches that exist in that repository).

The fleet commits and pushes `task/<id>`, the server opens one PR with `Closes #12`, a
review sends the task back and the next attempt pushes to the same branch and PR, and a
merge completes it. Modes: a pull agent (`agent-fleet agent`, cloning over `file://`),
and an ssh_cli host run locally or over the test sshd (cloning and pushing over
`ssh://` with a deploy key)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.agents import AgentProcess, start_agent
from tests.e2e.forgejo import ForgejoStandIn
from tests.e2e.helpers import PATIENCE_SECS, task, wait_for
from tests.e2e.server import ADMIN_TOKEN, PULL_TOKEN, ServerProcess
from tests.e2e.test_forgejo_flow import review_delivery
from tests.e2e.test_ssh_cli import AGENT_TYPES, host_block
from tests.e2e.test_webhooks import SECRET, deliver
from tests.git_remote import branch_sha, git, git_http, http_url, make_origin, refuse_pushes
from tests.sshd import SshServer

FORGE_TOKEN = "forgejo-api-token-77c1d2"
GIT_TOKEN = "git-push-token-4b9e0f6a2c"
REPO = "acme/widgets"
ISSUE = 12
LABEL = {'"name": "task"': '"name": "agent:code:rust"'}


def issue_asking(*words: str) -> dict[str, str]:
    """The real labelled-issue delivery, its body carrying the fake CLI's instructions."""
    return {**LABEL, "2. See traceback": f"2. See traceback {' '.join(words)}"}


@dataclass
class Forge:
    root: Path  # bare repositories: <root>/<owner>/<name>.git
    origin: Path
    standin: ForgejoStandIn


@pytest.fixture
def forge(tmp_path: Path) -> Iterator[Forge]:
    root = tmp_path / "forge"
    origin = make_origin(root, REPO)
    standin = ForgejoStandIn.start(FORGE_TOKEN, tmp_path / "standin.log", git_root=root)
    standin.set("permission", repo=REPO, user="carol", level="write")
    standin.set(
        "issue", repo=REPO, number=ISSUE, title="Export", body="", labels=[], labelled_by="carol"
    )
    yield Forge(root, origin, standin)
    report = standin.report()
    standin.stop()
    assert report["violations"] == [], "requests or answers outside Forgejo's API"


@dataclass
class Fleet:
    server: ServerProcess
    agent: AgentProcess | None
    admin: httpx.Client

    def logs(self) -> str:
        text = self.server.log_path.read_text(errors="replace")
        return text + (self.agent.output() if self.agent else "")


@pytest.fixture(params=["pull", "ssh_cli-local", "ssh_cli-ssh"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def start_fleet(tmp_path: Path, forge: Forge, mode: str, request: pytest.FixtureRequest) -> Fleet:
    forgejo = {
        "url": forge.standin.url,
        "token": FORGE_TOKEN,
        "webhook_secret": SECRET,
        "commit_author_name": "Fleet Bot",
        "commit_author_email": "fleet-bot@example.com",
    }
    if mode == "pull":
        server = ServerProcess(tmp_path, forgejo=forgejo).start()
        agent = start_agent(
            server,
            "rusty",
            tmp_path / "agent" / "work",
            capabilities=("code:rust",),
            git_base_url=f"file://{forge.root}",
            extra_args=(
                "--git-author-name",
                "Fleet Bot",
                "--git-author-email",
                "fleet-bot@example.com",
            ),
        )
    else:
        sshd: SshServer | None = request.getfixturevalue("sshd") if mode.endswith("ssh") else None
        block = host_block("h1", tmp_path / "runs", sshd, caps=("code:rust",)).rstrip("\n")
        if sshd is None:
            forgejo["clone_url"] = f"file://{forge.root}"
        else:
            forgejo["clone_url"] = f"ssh://{sshd.user}@127.0.0.1:{sshd.port}{forge.root}"
            block += (
                f'\ngit_ssh_key_path = "{sshd.key_path}"\ngit_known_hosts = "{sshd.known_hosts}"'
            )
        server = ServerProcess(
            tmp_path,
            orchestrator={"dispatch_interval_secs": 1, "ssh_poll_interval_secs": 0.2},
            forgejo=forgejo,
            extra_toml=block + "\n\n" + AGENT_TYPES,
        ).start()
        agent = None
    admin = httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
    )
    return Fleet(server, agent, admin)


@pytest.fixture
def fleet(
    tmp_path: Path, forge: Forge, mode: str, request: pytest.FixtureRequest
) -> Iterator[Fleet]:
    running = start_fleet(tmp_path, forge, mode, request)
    try:
        yield running
    finally:
        running.admin.close()
        if running.agent is not None:
            running.agent.stop(timeout=15)
        running.server.stop()


def state_of(admin: httpx.Client, task_id: str) -> str:
    return str(task(admin, task_id)["state"])


def artifacts(body: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [a for a in body["receipt"]["artifacts"] if a["type"] == kind]


def merge_delivery(admin: httpx.Client, task_id: str, number: int) -> httpx.Response:
    return deliver(
        admin,
        "pull_request_closed_merged.json",
        replace={"task/12-empty-export": f"task/{task_id}", '"number": 13': f'"number": {number}'},
    )


def test_a_labelled_issue_ends_as_one_pushed_branch_and_one_merged_pr(
    fleet: Fleet, forge: Forge
) -> None:
    admin = fleet.admin
    made = deliver(admin, "issues_label_updated.json", replace=issue_asking("EDIT", "GITENV"))
    task_id = made.json()["task_id"]
    branch = f"task/{task_id}"
    wait_for(lambda: state_of(admin, task_id) == "review_pending", 60, "the PR under review")

    body = task(admin, task_id)
    (pr,) = forge.standin.pulls(REPO)
    assert (pr["head"], pr["head_repo"], pr["base"]) == (branch, REPO, "main")
    assert f"Closes #{ISSUE}" in pr["body"] and "`fix-0.txt`" in pr["body"]
    assert body["pr"]["number"] == pr["number"] and body["pr"]["state"] == "open"
    sha = branch_sha(forge.origin, branch)
    assert [a["sha"] for a in artifacts(body, "branch")] == [sha]
    assert {a["path"] for a in artifacts(body, "file")} == {"README.md", "fix-0.txt"}
    readme = git("--git-dir", str(forge.origin), "show", f"{branch}:README.md")
    assert "edited by attempt 0" in readme
    author = git("--git-dir", str(forge.origin), "log", "-1", "--format=%an <%ae>", branch)
    assert author == "Fleet Bot <fleet-bot@example.com>"
    log = admin.get(f"/api/v1/tasks/{task_id}/logs").text
    assert "git credentials in my environment: []" in log and f"pushed {branch}" in log
    shown = fleet.server.cli("tasks", "show", task_id, "--server", fleet.server.url)
    assert f"branch: {branch} at {str(sha)[:12]}" in shown.stdout, shown.stdout + shown.stderr
    assert "files changed (2): " in shown.stdout and "fix-0.txt" in shown.stdout
    page = admin.get(f"/ui/tasks/{task_id}/detail").text
    assert "Files changed" in page and "fix-0.txt" in page and str(sha)[:12] in page

    # A review requesting changes: the next attempt pushes to the same branch and PR.
    pr_url = body["pr"]["url"]
    sent = review_delivery(admin, task_id, pr_url, "carol", "Please EDIT once more.")
    assert sent.json()["status"] == "sent back for changes"
    wait_for(
        lambda: (
            task(admin, task_id)["attempt"] == 1 and state_of(admin, task_id) == "review_pending"
        ),
        60,
        "the second attempt under review",
    )
    assert len(forge.standin.pulls(REPO)) == 1, "a second PR was opened"
    again = branch_sha(forge.origin, branch)
    assert again != sha
    git("--git-dir", str(forge.origin), "merge-base", "--is-ancestor", str(sha), str(again))
    second = task(admin, task_id)
    assert {a["path"] for a in artifacts(second, "file")} == {"README.md", "fix-1.txt"}

    merged = merge_delivery(admin, task_id, pr["number"])
    assert merged.json() == {"status": "pull request merged", "task_id": task_id}
    assert state_of(admin, task_id) == "completed"

    def comments() -> list[str]:
        return forge.standin.comments(REPO, ISSUE)

    wait_for(
        lambda: any("Completed" in c for c in comments()), PATIENCE_SECS, "the completed comment"
    )
    said = "\n".join(comments())
    assert pr_url in said and f"`{branch}`" in said
    everything = said + fleet.logs() + json.dumps(task(admin, task_id)) + log
    for secret in (FORGE_TOKEN, SECRET, ADMIN_TOKEN, PULL_TOKEN):
        assert secret not in everything


def test_a_push_the_remote_refuses_fails_the_attempt_with_its_message(
    fleet: Fleet, forge: Forge
) -> None:
    refuse_pushes(forge.origin, "protected: task branches need a signed-off commit")
    admin = fleet.admin
    made = deliver(admin, "issues_label_updated.json", replace=issue_asking("EDIT"))
    task_id = made.json()["task_id"]

    def failed_for_good() -> bool:
        body = task(admin, task_id)
        return body["state"] == "failed" and body["retry_at"] is None

    wait_for(failed_for_good, 90, "the last attempt failed")
    body = task(admin, task_id)
    # Retried as usual (default_max_retries = 2); a loaded machine may add a free attempt
    # (a run lost to the orchestrator's restart), which does not count.
    assert body["attempt"] - body["free_attempts"] == 2
    assert body["failure"]["reason"] == "error"
    message = body["failure"]["message"]
    assert message.startswith("git push failed") and "signed-off commit" in message
    assert forge.standin.pulls(REPO) == [] and branch_sha(forge.origin, f"task/{task_id}") is None


def test_a_cli_that_commits_itself_and_one_that_changes_nothing(fleet: Fleet, forge: Forge) -> None:
    admin = fleet.admin
    made = deliver(admin, "issues_label_updated.json", replace=issue_asking("EDIT", "COMMIT"))
    task_id = made.json()["task_id"]
    wait_for(lambda: state_of(admin, task_id) == "review_pending", 60, "the PR under review")
    log = git("--git-dir", str(forge.origin), "log", "--format=%an", f"task/{task_id}")
    assert log.splitlines()[0] == "The CLI", "the CLI's own commit was not pushed as it was"
    assert len(forge.standin.pulls(REPO)) == 1

    # The same issue, relabelled after the task ended: this time the CLI changes nothing.
    assert admin.post(f"/api/v1/tasks/{task_id}/cancel", json={}).status_code == 200
    nothing = deliver(
        admin, "issues_label_updated.json", replace=issue_asking("NOTHING"), delivery="again"
    )
    idle = nothing.json()["task_id"]
    wait_for(lambda: task(admin, idle)["failure"] is not None, 60, "the first attempt's end")
    failure = task(admin, idle)["failure"]
    assert failure["reason"] == "no_changes" and REPO in failure["message"]
    assert "all done" in task(admin, idle)["receipt"]["summary"]


def test_a_token_pushes_over_https_and_appears_nowhere(tmp_path: Path, forge: Forge) -> None:
    with git_http(forge.root, "fleet-bot", GIT_TOKEN) as git_server:
        server = ServerProcess(
            tmp_path,
            forgejo={"url": forge.standin.url, "token": FORGE_TOKEN, "webhook_secret": SECRET},
        ).start()
        agent = start_agent(
            server,
            "rusty",
            tmp_path / "agent" / "work",
            capabilities=("code:rust",),
            git_base_url=http_url(git_server),
            env={"AGENT_FLEET_GIT_TOKEN": GIT_TOKEN},
            extra_args=("--git-username", "fleet-bot"),
        )
        try:
            with httpx.Client(
                base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
            ) as admin:
                made = deliver(
                    admin, "issues_label_updated.json", replace=issue_asking("EDIT", "GITENV")
                )
                task_id = made.json()["task_id"]
                wait_for(lambda: state_of(admin, task_id) == "review_pending", 60, "the PR")
                seen = (
                    json.dumps(task(admin, task_id))
                    + admin.get(f"/api/v1/tasks/{task_id}/logs").text
                )
                seen += json.dumps(admin.get(f"/api/v1/tasks/{task_id}/events").json())
        finally:
            agent.stop(timeout=15)
            server.stop()
        assert git_server.refused >= 1, "the git server never asked for the token"
    assert branch_sha(forge.origin, f"task/{task_id}") is not None
    assert "git credentials in my environment: []" in seen
    seen += agent.output() + server.log_path.read_text() + json.dumps(forge.standin.report())
    assert GIT_TOKEN not in seen
    leftovers = [
        p
        for p in (tmp_path / "agent").rglob("*")
        if p.is_file() and GIT_TOKEN.encode() in p.read_bytes()
    ]
    assert leftovers == []
