"""The database's disk fills up: writes are refused cleanly (503), reads go on, nothing
written before is damaged, and the same server writes again once space is freed.

The disk is a small tmpfs mounted for the test (root only; elsewhere it skips)."""

import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import ADMIN_TOKEN, ServerProcess
from tests.reliability.support import rebuild_agrees

DISK_BYTES = 4 * 1024 * 1024


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_full_disk_refuses_writes_cleanly_and_recovers(tmp_path: Path, small_disk: Path) -> None:
    db = small_disk / "fleet.db"
    server = ServerProcess(tmp_path, orchestrator={"db_path": str(db)}).start()
    filler = small_disk / "filler"
    accepted: list[str] = []
    refused = 0
    try:
        with httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
        ) as admin:
            accepted.append(_create(admin, "before the disk filled"))
            # Leave the database almost no room, then keep writing until it is refused.
            free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
            filler.write_bytes(b"\0" * max(0, free - 64 * 1024))
            for n in range(400):
                reply = admin.post("/api/v1/tasks", json=_task(f"filling {n}"))
                if reply.status_code == 201:
                    accepted.append(reply.json()["task_id"])
                    continue
                assert reply.status_code == 503, reply.text
                assert reply.json()["code"] == "store_unavailable"
                refused += 1
                if refused >= 3:
                    break
            assert refused >= 3, "the disk never filled"
            assert admin.get("/healthz").status_code == 200
            listed = admin.get("/api/v1/tasks?limit=500")
            assert listed.status_code == 200  # reads go on
            filler.unlink()  # space again: the same process writes again
            accepted.append(_create(admin, "after space was freed"))
            stored = {t["task_id"] for t in admin.get("/api/v1/tasks?limit=500").json()["tasks"]}
    finally:
        server.stop()
    assert set(accepted) <= stored  # every 201 is there, nothing acknowledged was lost
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert "full" in server.log_path.read_text()  # the operator is told why
    rebuild_agrees(server)
    print(f"disk full: {len(accepted)} writes accepted, {refused} refused with 503, recovered")


def _task(title: str) -> dict[str, object]:
    return {"title": title, "prompt": "p" * 2000, "required_capabilities": ["x"]}


def _create(admin: httpx.Client, title: str) -> str:
    reply = admin.post("/api/v1/tasks", json=_task(title))
    assert reply.status_code == 201, reply.text
    task_id: str = reply.json()["task_id"]
    return task_id
