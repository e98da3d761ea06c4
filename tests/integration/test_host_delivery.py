"""Delivery on an ssh_cli host, through `HostRunner` over the local shell and over a real
sshd: the detached run commits and pushes after its CLI exits 0, a hostile task title
stays commit-message data, and `result` reports the pushed branch and files changed."""

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from agent_fleet.adapters.catalog import adapter_for
from agent_fleet.domain.ids import AgentId, Lease, TaskId
from agent_fleet.execution.delivery import ssh_command
from agent_fleet.execution.shell import LocalShell, Shell
from agent_fleet.hosts.runner import CommitAuthor, Host, HostRunner
from agent_fleet.ports.hosts import RunKey, RunOrder, RunPhase, RunResult
from tests.git_remote import branch_sha, git, make_origin
from tests.integration.test_detached_runs import ssh_shell
from tests.sshd import SshServer

HOSTILE = "$(touch PWNED) `touch PWNED2` '\"; touch PWNED3 #\nsecond line"
# Edits a file without committing, like most agent CLIs.
EDITOR = [sys.executable, "-c", "open('README.md', 'a').write('fixed\\n')"]


@pytest.fixture(params=["local", "ssh"])
def host(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Callable[[], Shell], str | None]:
    """A shell factory, and the git URL prefix the host clones from (over SSH for ssh)."""
    if request.param == "local":
        return LocalShell, None
    sshd: SshServer = request.getfixturevalue("sshd")
    return (lambda: ssh_shell(sshd)), f"ssh://{sshd.user}@127.0.0.1:{sshd.port}"


@contextlib.asynccontextmanager
async def runner(shell: Shell, work: Path, base: str, key: str | None) -> AsyncIterator[HostRunner]:
    hosts = [Host("h1", shell, str(work), git_ssh_command=key)]
    the_runner = HostRunner(
        hosts,
        server_url="http://127.0.0.1:9",
        adapters=lambda agent_type: adapter_for(agent_type, EDITOR),
        git_base_url=base,
        author=CommitAuthor("Host Bot", "host-bot@example.com"),
    )
    try:
        yield the_runner
    finally:
        await the_runner.close()


def test_a_completed_run_on_a_host_pushes_its_branch(
    host: tuple[Callable[[], Shell], str | None], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    make_shell, over_ssh = host
    root = tmp_path / "forge"
    origin = make_origin(root, "acme/widgets")
    key = None
    base = f"file://{root}"
    if over_ssh is not None:
        sshd: SshServer = request.getfixturevalue("sshd")
        base = f"{over_ssh}{root}"
        key = ssh_command(str(sshd.key_path), str(sshd.known_hosts))
    run_key = RunKey("h1", TaskId("t-7"), 0)

    async def scenario() -> RunResult:
        async with runner(make_shell(), tmp_path / "runs", base, key) as hosts:
            await hosts.launch(
                RunOrder(
                    key=run_key,
                    agent_id=AgentId("h1/editor"),
                    agent_type="editor",
                    prompt="fix it",
                    repo="acme/widgets",
                    branch="task/t-7",
                    lease=Lease("l" * 32),
                    title=HOSTILE,
                )
            )
            for _ in range(400):
                (seen,) = await hosts.survey("h1")
                if seen.phase is RunPhase.EXITED:
                    return await hosts.result(run_key, "editor", seen.exit_code)
                await asyncio.sleep(0.05)
            raise AssertionError("the run never exited")

    result = asyncio.run(scenario())
    assert result.completed, result
    sha = branch_sha(origin, "task/t-7")
    assert [(a.type, a.name, a.sha) for a in result.artifacts if a.type == "branch"] == [
        ("branch", "task/t-7", sha)
    ]
    assert [a.path for a in result.artifacts if a.type == "file"] == ["README.md"]
    message = git("--git-dir", str(origin), "log", "-1", "--format=%an|%B", "task/t-7")
    assert message.startswith("Host Bot|$(touch PWNED) `touch PWNED2` '\"; touch PWNED3 #")
    assert "second line" not in message
    assert not list(tmp_path.rglob("PWNED*")) and not list(Path.home().glob("PWNED*"))
