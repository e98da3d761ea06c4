"""Detached runs on a host, through the local shell and through a real sshd: the same
scripts, the same tests. Hostile text stays data; stop kills the whole process group."""

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from agent_fleet.execution.detached import DetachedRuns, RunError, RunState, SeenRun, run_paths
from agent_fleet.execution.shell import LocalShell, Shell, ShellError
from agent_fleet.execution.ssh import SshShell, SshTarget
from tests import processes
from tests.sshd import SshServer, free_port, running

HOSTILE = "$(touch PWNED) `touch PWNED2` '\"; touch PWNED3; echo \\\nnew line ; rm -rf / #"
#: Bound on waiting for a run to reach a state: generous, a starved machine is slow.
PATIENCE_SECS = 60.0


def ssh_shell(sshd: SshServer, **overrides: object) -> SshShell:
    target = {
        "hostname": "127.0.0.1",
        "port": sshd.port,
        "user": sshd.user,
        "key_path": str(sshd.key_path),
        "known_hosts": str(sshd.known_hosts),
        "connect_timeout": 5.0,
        **overrides,
    }
    return SshShell(SshTarget(**target))  # type: ignore[arg-type]


MakeShell = Callable[[], Shell]


@pytest.fixture(params=["local", "ssh"])
def make_shell(request: pytest.FixtureRequest) -> MakeShell:
    """A new shell per event loop: an SSH connection belongs to the loop that opened it."""
    if request.param == "local":
        return LocalShell
    sshd: SshServer = request.getfixturevalue("sshd")
    return lambda: ssh_shell(sshd)


@contextlib.asynccontextmanager
async def hosted(make_shell: MakeShell, work_dir: Path) -> AsyncIterator[DetachedRuns]:
    runs = DetachedRuns(make_shell(), str(work_dir))
    try:
        yield runs
    finally:
        await runs.shell.close()


def test_a_run_gets_hostile_text_byte_for_byte_and_executes_none(
    make_shell: MakeShell, tmp_path: Path
) -> None:
    async def scenario() -> tuple[list[RunState], bytes]:
        async with hosted(make_shell, tmp_path) as runs:
            paths = run_paths(str(tmp_path), "t-1", 1)
            await runs.prepare(paths, "t-1", "PROMPT " + HOSTILE, None, "task/t-1")
            argv = ["sh", "-c", 'printf "arg=%s|env=%s|" "$1" "$X"; cat', "agent", HOSTILE]
            await runs.launch(paths, argv, {"X": HOSTILE})
            states = [run.state for run in await until_run(runs, RunState.EXITED)]
            output = await runs.read_from(paths.log_file, 0, 1_000_000)
            assert output is not None
            return states, output

    states, output = asyncio.run(scenario())
    assert states[-1] is RunState.EXITED
    assert output.decode() == f"arg={HOSTILE}|env={HOSTILE}|PROMPT {HOSTILE}"
    assert not list(tmp_path.rglob("PWNED*"))  # nothing in the text ran
    assert not list(Path.cwd().glob("PWNED*"))


def test_hostile_task_ids_stay_inside_the_work_dir(make_shell: MakeShell, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()

    async def scenario() -> None:
        async with hosted(make_shell, work) as runs:
            for task_id in ["../../escape", "/etc/passwd", "a/../../b", ".."]:
                paths = run_paths(str(work), task_id, 1)
                await runs.prepare(paths, task_id, "p", None, "b")
            seen = await runs.survey()
            assert sorted(r.task_id for r in seen) == sorted(
                ["../../escape", "/etc/passwd", "a/../../b", ".."]
            )

    asyncio.run(scenario())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]


def test_stop_kills_the_whole_group_and_the_exit_is_recorded(
    make_shell: MakeShell, tmp_path: Path
) -> None:
    child_pid = tmp_path / "child.pid"

    async def scenario() -> list[RunState]:
        async with hosted(make_shell, tmp_path) as runs:
            paths = run_paths(str(tmp_path), "t-2", 1)
            await runs.prepare(paths, "t-2", "p", None, "b")
            script = f"sleep 300 & echo $! > {child_pid}; sleep 300"
            await runs.launch(paths, ["sh", "-c", script], {})
            await asyncio.to_thread(_wait_for_text, child_pid)
            await runs.stop(paths, grace_secs=2)
            return [r.state for r in await runs.survey()]

    assert asyncio.run(scenario()) == [RunState.EXITED]
    pid = int(child_pid.read_text())
    assert not running(pid), "the CLI's child outlived the stop"


def test_a_run_outlives_the_connection_that_started_it(
    make_shell: MakeShell, tmp_path: Path
) -> None:
    gate = tmp_path / "go"
    script = f"while [ ! -f {gate} ]; do sleep 0.05; done; echo finished"

    async def start() -> None:
        async with hosted(make_shell, tmp_path) as runs:
            paths = run_paths(str(tmp_path), "t-3", 1)
            await runs.prepare(paths, "t-3", "p", None, "b")
            await runs.launch(paths, ["sh", "-c", script], {})
            await runs.shell.close()  # the orchestrator goes away

    async def later() -> tuple[list[RunState], bytes | None]:
        async with hosted(make_shell, tmp_path) as runs:
            first = [r.state for r in await runs.survey()]
            gate.touch()  # it ends only now, long after its connection closed
            second = [r.state for r in await until_run(runs, RunState.EXITED)]
            log = await runs.read_from(run_paths(str(tmp_path), "t-3", 1).log_file, 0, 100)
            return first + second, log

    asyncio.run(start())
    states, log = asyncio.run(later())
    assert states == [RunState.ALIVE, RunState.EXITED]
    assert log == b"finished\n"


def test_a_missing_cli_is_a_recorded_exit_not_a_hang(make_shell: MakeShell, tmp_path: Path) -> None:
    async def scenario() -> tuple[int | None, bytes | None]:
        async with hosted(make_shell, tmp_path) as runs:
            paths = run_paths(str(tmp_path), "t-4", 1)
            await runs.prepare(paths, "t-4", "p", None, "b")
            await runs.launch(paths, ["no-such-agent-cli-xyz", "--flag"], {})
            (run,) = await until_run(runs, RunState.EXITED)
            return run.exit_code, await runs.read_from(paths.log_file, 0, 1000)

    code, log = asyncio.run(scenario())
    assert code == 127
    assert log is not None and b"no-such-agent-cli-xyz" in log


def test_a_failed_clone_is_a_run_error(make_shell: MakeShell, tmp_path: Path) -> None:
    async def scenario() -> None:
        async with hosted(make_shell, tmp_path) as runs:
            paths = run_paths(str(tmp_path), "t-5", 1)
            await runs.prepare(paths, "t-5", "p", str(tmp_path / "no-such-repo.git"), "task/t-5")

    with pytest.raises(RunError, match="git clone failed"):
        asyncio.run(scenario())


def test_ssh_refuses_an_unknown_host_key(sshd: SshServer, tmp_path: Path) -> None:
    other = tmp_path / "known_hosts"
    other.write_text(
        f"[127.0.0.1]:{sshd.port} ssh-ed25519 "
        "AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ\n"
    )
    with pytest.raises(ShellError, match=r"ssh 127\.0\.0\.1"):
        asyncio.run(ssh_shell(sshd, known_hosts=str(other)).run(["true"]))


def test_ssh_to_a_closed_port_is_a_shell_error_at_once_not_after_the_timeout(
    sshd: SshServer,
) -> None:
    started = time.monotonic()
    with pytest.raises(ShellError):
        asyncio.run(ssh_shell(sshd, port=free_port(), connect_timeout=120.0).run(["true"]))
    assert time.monotonic() - started < 60  # refused, not waited out


def test_a_survey_while_runs_come_and_go_never_fails(make_shell: MakeShell, tmp_path: Path) -> None:
    """Runs are made and removed while a survey walks them: a survey that failed would
    mark the whole host down (and, past the heartbeat timeout, lose its tasks)."""
    churn = tmp_path / "t-churn"
    loop = (
        f"while [ ! -f {tmp_path / 'stop'} ]; do mkdir -p {churn}/attempt-0/meta; "
        f"echo t-churn > {churn}/attempt-0/meta/task_id; echo 1 > {churn}/attempt-0/meta/exit; "
        f"rm -rf {churn}; done"
    )
    churner = processes.spawn(["sh", "-c", loop])

    async def scenario() -> None:
        async with hosted(make_shell, tmp_path) as runs:
            for _ in range(50):  # the old script failed within a few
                for run in await runs.survey():  # it raised RunError ("cannot list runs")
                    assert run.task_id == "t-churn", run

    try:
        asyncio.run(scenario())
    finally:
        (tmp_path / "stop").touch()
        processes.stop(churner)


async def until_run(runs: DetachedRuns, state: RunState) -> list[SeenRun]:
    """Survey until every run is in `state`; what the last survey saw."""
    started = time.monotonic()
    while True:
        seen = await runs.survey()
        if seen and all(run.state is state for run in seen):
            return seen
        assert time.monotonic() - started < PATIENCE_SECS, f"no run became {state}: {seen}"
        await asyncio.sleep(0.05)


def _wait_for_text(path: Path, limit_secs: float = PATIENCE_SECS) -> None:
    started = time.monotonic()
    while not (path.exists() and path.read_text().strip()):
        assert time.monotonic() - started < limit_secs, f"{path} never written"
        time.sleep(0.02)


def test_purge_keeps_completed_runs_for_their_hours_and_failed_for_their_days(
    make_shell: MakeShell, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    hour_ago, three_days_ago = time.time() - 3600, time.time() - 3 * 86400

    async def scenario() -> None:
        async with hosted(make_shell, work) as runs:
            for task_id in ("done-old", "done-new", "failed-old", "failed-new"):
                await runs.prepare(run_paths(str(work), task_id, 0), task_id, "p", None, "b")
            for task_id in ("done-old", "done-new"):
                await runs.mark_completed(run_paths(str(work), task_id, 0))
            os.utime(work / "done-old/attempt-0/meta/completed", (hour_ago, hour_ago))
            for old in ("failed-old/attempt-0", "done-new/attempt-0"):
                os.utime(work / old, (three_days_ago, three_days_ago))
            await runs.purge_older_than(days=2, completed_minutes=30)

    asyncio.run(scenario())
    # A completed run goes by its mark's age, whatever its directory's; a failed one by
    # its directory's days. Empty task directories go too.
    assert sorted(p.name for p in work.iterdir()) == ["done-new", "failed-new"]
