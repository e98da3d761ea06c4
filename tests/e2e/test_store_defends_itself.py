"""The SQLite store defends itself (issue 14, findings 2 to 5): one writer per file, no
rebuild beside a server, a deleted or replaced file noticed, reads that never queue
behind a foreign write lock, and a WAL that shrinks back once a long reader lets go."""

import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.helpers import PATIENCE_SECS, create, dequeue, register, task, wait_for
from tests.e2e.server import ServerProcess

SQLITE3 = shutil.which("sqlite3")
WAL_LIMIT_BYTES = 8 * 1024 * 1024  # store/sqlite_file.py


class Sqlite3Shell:
    """The `sqlite3` command-line shell on the server's file: another process entirely."""

    def __init__(self, db: Path) -> None:
        if SQLITE3 is None:
            pytest.skip("the sqlite3 shell is not installed (Debian: apt-get install sqlite3)")
        self.proc = subprocess.Popen(
            [SQLITE3, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def run(self, sql: str, marker: str) -> None:
        """Run `sql`, then wait until the shell printed `marker` (it ran)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{sql}\nSELECT '{marker}';\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline().strip()
        while line != marker:
            assert line, f"the sqlite3 shell ended before {marker!r}"
            line = self.proc.stdout.readline().strip()

    def close(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()  # end of input: the shell rolls back and exits
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()


@pytest.fixture
def shell(server: ServerProcess) -> Iterator[Sqlite3Shell]:
    opened = Sqlite3Shell(server.db_path)
    yield opened
    opened.close()


def beside(server: ServerProcess, tmp_path: Path) -> ServerProcess:
    """A second server's config: another port, the same database file."""
    other = ServerProcess(tmp_path / "second", orchestrator={"db_path": str(server.db_path)})
    other.workdir.mkdir()
    other.write_config()
    return other


# --- one writer per file ------------------------------------------------------------


def test_a_second_server_on_the_same_file_exits_at_once_naming_the_first(
    server: ServerProcess, admin: httpx.Client, tmp_path: Path
) -> None:
    second = beside(server, tmp_path)
    assert server.proc is not None
    done = subprocess.run(
        [sys.executable, "-m", "agent_fleet", "serve", "--config", str(second.config_path)],
        capture_output=True,
        text=True,
        timeout=60,  # on the old code it served on: this expired
        cwd=second.workdir,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"in use by another agent-fleet process (pid {server.proc.pid})" in done.stderr
    assert admin.get("/healthz").status_code == 200  # the first one is untouched
    for command in (("db", "migrate"), ("db", "rebuild", "--check")):
        refused = second.cli(*command, "--config", str(second.config_path))
        assert refused.returncode == 1, command
        assert f"pid {server.proc.pid}" in refused.stderr, command


def test_db_rebuild_beside_a_serving_server_refuses_and_loses_no_write(
    server: ServerProcess, admin: httpx.Client, puller: httpx.Client
) -> None:
    register(puller, "w", ["busy"])
    answered: dict[str, str] = {}  # task id -> the state a 200 reply acknowledged
    stop = threading.Event()

    def writes() -> None:
        with httpx.Client(base_url=server.url, headers=admin.headers, timeout=30) as own:
            while not stop.is_set():
                task_id = create(own, "w", ["busy"])["task_id"]
                reply = own.post(f"/api/v1/tasks/{task_id}/cancel")
                if reply.status_code == 200:
                    answered[task_id] = reply.json()["state"]

    writer = threading.Thread(target=writes)
    writer.start()
    try:
        wait_for(lambda: len(answered) >= 5, PATIENCE_SECS, "writes under way")
        rebuild = server.cli("db", "rebuild", "--config", str(server.config_path))
        wait_for(lambda: len(answered) >= 10, PATIENCE_SECS, "writes after the rebuild")
    finally:
        stop.set()
        writer.join(timeout=60)
    assert server.proc is not None
    assert rebuild.returncode == 1, rebuild.stdout
    assert f"pid {server.proc.pid}" in rebuild.stderr
    assert all(task(admin, t)["state"] == state == "cancelled" for t, state in answered.items())
    fresh = create(admin, "still served", ["busy"])["task_id"]
    got = dequeue(puller, "w")
    assert got is not None and got[0] == fresh  # the queue is not wedged
    server.stop()
    offline = server.cli("db", "rebuild", "--config", str(server.config_path))
    assert offline.returncode == 0, offline.stderr
    assert "projections match the events" in offline.stdout


# --- the file under a running server ------------------------------------------------


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_database_file_deleted_or_replaced_under_the_server_is_noticed(
    server: ServerProcess, admin: httpx.Client, how: str
) -> None:
    create(admin, "before", [])
    if how == "deleted":
        os.unlink(server.db_path)
    else:
        copy = server.db_path.with_name("copy.db")
        with sqlite3.connect(server.db_path) as source, sqlite3.connect(copy) as target:
            source.backup(target)
        os.replace(copy, server.db_path)

    health = admin.get("/healthz")
    assert (health.status_code, health.json()["code"]) == (503, "store_unavailable")
    write = admin.post("/api/v1/tasks", json={"title": "into the void", "prompt": "p"})
    assert (write.status_code, write.json()["code"]) == (503, "store_unavailable")
    wait_for(
        lambda: "sqlite database file lost" in server.log_path.read_text(), PATIENCE_SECS, "log"
    )
    assert f"was {how}" in server.log_path.read_text()


# --- a foreign process on the file ----------------------------------------------------


def test_reads_do_not_queue_behind_a_foreign_write_lock(
    server: ServerProcess, admin: httpx.Client, shell: Sqlite3Shell
) -> None:
    shell.run("BEGIN IMMEDIATE;", "locked")
    blocked: dict[str, Any] = {}

    def write() -> None:  # waits for the lock, up to busy_timeout (10 s)
        with httpx.Client(base_url=server.url, headers=admin.headers, timeout=60) as own:
            blocked["status"] = own.post(
                "/api/v1/tasks", json={"title": "waits", "prompt": "p"}
            ).status_code

    writer = threading.Thread(target=write)
    writer.start()
    try:
        for _ in range(5):  # about a second of reads while the write waits
            assert admin.get("/healthz").status_code == 200
            assert admin.get("/api/v1/tasks").status_code == 200
            assert "status" not in blocked, "a read waited until the blocked write gave up"
            time.sleep(0.2)
    finally:
        shell.run("COMMIT;", "released")
        writer.join(timeout=60)
    assert blocked["status"] == 201  # it waited, and went through once the lock was free


def test_the_wal_shrinks_back_once_a_long_reader_lets_go(
    server: ServerProcess, admin: httpx.Client, shell: Sqlite3Shell
) -> None:
    wal = Path(f"{server.db_path}-wal")
    shell.run("BEGIN; SELECT count(*) FROM events;", "reading")  # holds its snapshot
    prompt = "x" * 200_000
    while wal.stat().st_size <= 2 * WAL_LIMIT_BYTES:  # pinned: nothing can be checkpointed
        reply = admin.post("/api/v1/tasks", json={"title": "big", "prompt": prompt})
        assert reply.status_code == 201, reply.text
    grown = wal.stat().st_size
    shell.run("COMMIT;", "done reading")
    wait_for(lambda: wal.stat().st_size <= WAL_LIMIT_BYTES, PATIENCE_SECS, "the WAL to shrink")
    assert grown > 2 * WAL_LIMIT_BYTES
    assert admin.get("/healthz").status_code == 200
