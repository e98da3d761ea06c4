"""The delivery's pure parts: the plan it reads, the commit message, and its results."""

import subprocess
from pathlib import Path

import pytest

from agent_fleet.execution.delivery import (
    MAX_LISTED_FILES,
    DeliveryStatus,
    Plan,
    commit_message,
    plan_files,
    read_delivery,
    read_results,
    results_argv,
    ssh_command,
)


def plan(branch: str = "task/t-1", remote: str | None = "file:///r.git") -> Plan:
    return Plan(remote=remote, branch=branch, task_id="t-1", title="Fix it")


@pytest.mark.parametrize(
    "branch",
    [
        "--upload-pack=touch PWNED",
        "task/a:refs/heads/main",
        "task/../main",
        "task/a b",
        "",
        "task/",
    ],
)
def test_a_branch_git_would_read_as_something_else_is_refused(branch: str) -> None:
    with pytest.raises(ValueError, match="not a branch name"):
        plan_files(plan(branch))


def test_the_commit_message_is_one_clean_line_of_the_title_and_the_task_id() -> None:
    message = commit_message("\n  # Fix\x1b[31m the\texport  \nsecond line", "t-9")
    assert message == "# Fix [31m the export\n\nagent-fleet task t-9\n"
    assert commit_message("", "t-9").startswith("agent-fleet task\n")
    assert len(commit_message("x" * 1000, "t").splitlines()[0]) == 200


def test_without_a_repository_only_the_listing_is_planned() -> None:
    assert set(plan_files(plan(remote=None))) == {"branch", "deliver.sh"}
    assert {"remote", "message", "author_name", "author_email"} <= set(plan_files(plan()))


def test_results_are_read_as_the_script_leaves_them() -> None:
    files = b"\0".join(f"./f{n}".encode() for n in range(MAX_LISTED_FILES + 3)) + b"\0"
    pushed = read_delivery(b"pushed " + b"a" * 40 + b"\n", files, None)
    assert pushed.status is DeliveryStatus.PUSHED and pushed.sha == "a" * 40
    assert pushed.files[0] == "f0" and len(pushed.files) == MAX_LISTED_FILES
    assert pushed.more_files == 3
    failed = read_delivery(b"failed git push\n", None, b"remote: refused\n")
    assert failed.status is DeliveryStatus.FAILED
    assert failed.error == "git push failed: remote: refused"
    missing = read_delivery(None, None, None, missing="killed")
    assert (missing.status, missing.error) == (DeliveryStatus.FAILED, "killed")


def test_a_deploy_key_means_that_key_only_and_strict_host_keys() -> None:
    command = ssh_command("/keys/deploy key", "/etc/known")
    assert command is not None
    assert "IdentitiesOnly=yes" in command and "StrictHostKeyChecking=yes" in command
    assert "'/keys/deploy key'" in command  # quoted: git runs it through a shell
    assert ssh_command(None, None) is None


def test_a_hosts_results_arrive_in_one_read(tmp_path: Path) -> None:
    def results(files: dict[str, bytes], root: Path) -> bytes:
        (root / "meta").mkdir(parents=True)
        for name, data in files.items():
            (root / "meta" / name).parent.mkdir(parents=True, exist_ok=True)
            (root / "meta" / name).write_bytes(data)
        return subprocess.run(results_argv(str(root)), capture_output=True, check=True).stdout

    return_files = {
        "git/branch": b"task/t-1",
        "delivery": b"pushed " + b"c" * 40 + b"\n",
        "changed-files": b"a\nb.txt\0c.txt\0",  # a newline inside a path stays in it
    }
    delivered = read_results(results(return_files, tmp_path / "one"))
    assert delivered is not None and delivered.sha == "c" * 40
    assert delivered.files == ("a\nb.txt", "c.txt")
    assert read_results(results({}, tmp_path / "legacy")) is None  # launched before delivery
    missing = read_results(results({"git/branch": b"task/t-1"}, tmp_path / "killed"))
    assert missing is not None and missing.status is DeliveryStatus.FAILED
