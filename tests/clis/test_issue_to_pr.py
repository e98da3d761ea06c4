"""Issue in, pull request out with the real CLIs: a labelled-issue webhook makes a task for
a repository whose remote is a real bare git repository, the real aider / Claude Code /
Codex edits it at the stand-in model's word (aider commits on its own, the others only
write the file), the pull agent commits what is left and pushes `task/<id>`, the server
opens exactly one PR with `Closes #N` on the Forgejo stand-in, the task goes
`review_pending`, and a merge webhook completes it.

The forge (bare remote and stand-in) and the webhook deliveries are the e2e tier's
(tests/e2e/test_issue_to_pr.py); only the CLI is real here."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.clis.conftest import CODEX_IDLE_SECS, KEY, ModelServer, Spawn, _recipe_for, installed
from tests.clis.standin_script import FILE_NAME, FILE_TEXT, FINAL_TEXT, SIDE_TEXT
from tests.clis.test_real_clis import wait_for_task
from tests.e2e.agents import AgentProcess
from tests.e2e.server import ADMIN_TOKEN, PULL_TOKEN, ServerProcess
from tests.e2e.test_issue_to_pr import (  # the e2e tier's forge, shared, not copied
    FORGE_TOKEN,
    ISSUE,
    LABEL,
    REPO,
    Forge,
    artifacts,
    forge,  # noqa: F401  (a fixture)
    merge_delivery,
    state_of,
)
from tests.e2e.test_ssh_cli import host_block
from tests.e2e.test_webhooks import SECRET, deliver
from tests.git_remote import branch_sha, git
from tests.sshd import SshServer

BOT = "Fleet Bot <fleet-bot@example.com>"


@pytest.fixture
def fleet(tmp_path: Path, forge: Forge) -> Iterator[ServerProcess]:  # noqa: F811
    """The tier's server (tests/clis/conftest.py), connected to the Forgejo stand-in."""
    server = ServerProcess(
        tmp_path / "server",
        orchestrator={"default_max_retries": 0, "task_timeout_secs": 900},
        forgejo={"url": forge.standin.url, "token": FORGE_TOKEN, "webhook_secret": SECRET},
        extra_toml=f"\n[agent_types.codex]\nidle_timeout_secs = {CODEX_IDLE_SECS}\n",
    )
    server.workdir.mkdir()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def admin(fleet: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=fleet.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
    ) as client:
        yield client


@pytest.mark.timeout(600)
@pytest.mark.parametrize("cli", ["aider", "claude", "codex"])
def test_a_labelled_issue_ends_as_a_pushed_branch_and_one_merged_pr(
    cli: str,
    model: ModelServer,
    forge: Forge,  # noqa: F811
    fleet: ServerProcess,
    admin: httpx.Client,
    spawn_agent: Spawn,
) -> None:
    bot_name, bot_email = BOT.removesuffix(">").split(" <")
    agent = spawn_agent(
        cli,
        f"{cli}-git",
        "code:rust",
        url=model.url,
        key=KEY,
        extra_args=(
            "--git-base-url",
            f"file://{forge.root}",
            "--git-author-name",
            bot_name,
            "--git-author-email",
            bot_email,
        ),
    )
    check_issue_to_merged_pr(cli, admin, forge, [agent])


def check_issue_to_merged_pr(
    cli: str, admin: httpx.Client, remote: Forge, agents: list[AgentProcess]
) -> None:
    """A labelled-issue delivery, then: a pushed branch with the CLI's edit, one PR closing
    the issue, review_pending, and a merge delivery completing the task."""
    made = deliver(admin, "issues_label_updated.json", replace=LABEL)
    assert made.json()["status"] == "created", made.text
    task_id = made.json()["task_id"]
    branch = f"task/{task_id}"
    body = wait_for_task(
        admin, task_id, lambda t: t["state"] in ("review_pending", "failed"), 300, agents
    )
    assert body["state"] == "review_pending", body

    # The branch arrived on the remote with the CLI's edit.
    sha = branch_sha(remote.origin, branch)
    assert sha is not None and [a["sha"] for a in artifacts(body, "branch")] == [sha]
    pushed = git("--git-dir", str(remote.origin), "show", f"{branch}:{FILE_NAME}")
    assert pushed.strip() == FILE_TEXT.strip()
    history = git(
        "--git-dir", str(remote.origin), "log", "--format=%an <%ae>|%s", f"main..{branch}"
    )
    if cli == "aider":
        # One commit, aider's own (its message from the model's side request), under the
        # bot identity the fleet gave the workspace; no commit of its `.gitignore` edit.
        assert history.splitlines() == [f"{BOT}|{SIDE_TEXT}"], history
    else:
        # The CLI only wrote the file: the fleet committed it as the bot, titled by the task.
        assert history.splitlines() == [f"{BOT}|{body['title']}"], history
    assert {a["path"] for a in artifacts(body, "file")} == {FILE_NAME}

    # Exactly one PR, from the branch, closing the issue.
    (pr,) = remote.standin.pulls(REPO)
    assert (pr["head"], pr["base"]) == (branch, "main")
    assert f"Closes #{ISSUE}" in pr["body"] and f"`{FILE_NAME}`" in pr["body"]
    # Titled by the task, described by what the real CLI said it did.
    assert pr["title"] == body["title"] and FINAL_TEXT in pr["body"]
    assert body["pr"]["number"] == pr["number"] and body["pr"]["state"] == "open"

    merged = merge_delivery(admin, task_id, pr["number"])
    assert merged.json() == {"status": "pull request merged", "task_id": task_id}
    assert state_of(admin, task_id) == "completed"
    assert len(remote.standin.pulls(REPO)) == 1
    seen = admin.get(f"/api/v1/tasks/{task_id}/logs").text + json.dumps(body)
    assert f"pushed {branch}" in seen
    seen += "".join(agent.output() for agent in agents)
    for secret in (KEY, FORGE_TOKEN, SECRET, PULL_TOKEN):
        assert secret not in seen


@pytest.mark.timeout(600)
@pytest.mark.parametrize("host", ["local", "ssh"])
def test_on_an_ssh_cli_host_aiders_commit_is_pushed_and_one_pr_opened(
    host: str,
    model: ModelServer,
    forge: Forge,  # noqa: F811
    tmp_path: Path,
) -> None:
    """The same path on an ssh_cli host, run locally or over a real sshd (cloning and
    pushing over `ssh://` with a deploy key). The host's user has aider on PATH and its
    model settings in its login profile, as a host's operator sets them up; its HOME is
    the test's (the server's environment, or sshd's SetEnv), not the machine user's."""
    home = tmp_path / "host-home"
    home.mkdir()
    exported = _recipe_for("aider", home, url=model.url, key=KEY)
    exported["PATH"] = f"{installed('aider')}:$PATH"
    profile = "".join(f'export {name}="{value}"\n' for name, value in exported.items())
    (home / ".profile").write_text(profile)
    bot_name, bot_email = BOT.removesuffix(">").split(" <")
    stack = contextlib.ExitStack()
    sshd = None
    if host == "ssh":
        sshd = SshServer.start(tmp_path / "sshd", {"HOME": str(home)})
        stack.callback(sshd.stop)
    block = host_block("h1", tmp_path / "runs", sshd, caps=("code:rust",), agent_type="aider")
    clone_url = f"file://{forge.root}"
    if sshd is not None:
        clone_url = f"ssh://{sshd.user}@127.0.0.1:{sshd.port}{forge.root}"
        block = block.rstrip("\n") + (
            f'\ngit_ssh_key_path = "{sshd.key_path}"\ngit_known_hosts = "{sshd.known_hosts}"\n'
        )
    server = ServerProcess(
        tmp_path / "server",
        orchestrator={
            "default_max_retries": 0,
            "task_timeout_secs": 900,
            "dispatch_interval_secs": 1,
            "ssh_poll_interval_secs": 0.2,
        },
        forgejo={
            "url": forge.standin.url,
            "token": FORGE_TOKEN,
            "webhook_secret": SECRET,
            "clone_url": clone_url,
            "commit_author_name": bot_name,
            "commit_author_email": bot_email,
        },
        extra_toml=block,
        env={"HOME": str(home)},
    )
    server.workdir.mkdir()
    with stack:
        server.start()
        stack.callback(server.stop)
        admin = stack.enter_context(
            httpx.Client(
                base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
            )
        )
        check_issue_to_merged_pr("aider", admin, forge, [])
