"""Issue 14's figures, each against a real `agent-fleet serve` on SQLite:

  python -m bench.stuck wake    POST /api/v1/tasks latency (a task nobody can take)
                                with 0 and with 1,000 idle long-polls
  python -m bench.stuck stuck   from creating a task to a live agent holding it, when an
                                agent died (kill -9) with its long-poll open
  python -m bench.stuck wal     the WAL while an external sqlite3 holds a read
                                transaction over big creates, and after it lets go
  python -m bench.stuck lock    GET /healthz while an external sqlite3 holds the write
                                lock and a write waits for it

Not part of `make bench`: these measure faults, not throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import httpx
import psutil
from tests.e2e.agents import start_agent
from tests.e2e.server import ADMIN_TOKEN, PULL_TOKEN, ServerProcess

from bench.http import RawClient

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PULL = {"Authorization": f"Bearer {PULL_TOKEN}"}
QUIET = {"heartbeat_interval_secs": 60, "heartbeat_timeout_threshold": 3}


def _client(server: ServerProcess, headers: dict[str, str]) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers=headers, timeout=60)


# --- wake: what one create costs with idle long-polls ---------------------------------


async def _creates(url: str, count: int) -> list[float]:
    client = RawClient(url, ADMIN)
    body = {"title": "nobody", "prompt": "p", "required_capabilities": ["nobody"]}
    took = []
    for _ in range(count):
        started = time.perf_counter()
        status, _ = await client.post("/api/v1/tasks", body)
        took.append(time.perf_counter() - started)
        assert status == 201, status
    await client.close()
    return took


async def _idle_polls(url: str, waiters: int) -> tuple[list[asyncio.Task[object]], list[RawClient]]:
    registrar = RawClient(url, PULL)
    for n in range(waiters):
        body = {"agent_id": f"idle-{n}", "agent_type": "b", "capabilities": ["idle"]}
        status, _ = await registrar.post("/api/v1/agents/register", body)
        assert status == 200, status
    await registrar.close()
    clients = [RawClient(url, PULL) for _ in range(waiters)]
    polls = [
        asyncio.create_task(
            c.post("/api/v1/tasks/dequeue", {"agent_id": f"idle-{n}", "wait_secs": 30})
        )
        for n, c in enumerate(clients)
    ]
    return polls, clients  # type: ignore[return-value]


async def _quiet(cpu: psutil.Process) -> None:
    """Until the server spends under 5 % of a core: every poll has arrived and waits."""
    while True:
        before = sum(cpu.cpu_times()[:2])
        await asyncio.sleep(1)
        if sum(cpu.cpu_times()[:2]) - before < 0.05:
            return


async def _wake_once(
    server: ServerProcess, waiters: int, creates: int
) -> tuple[list[float], float]:
    """Latencies of `creates` creates, and the server's CPU seconds per create."""
    assert server.proc is not None
    cpu = psutil.Process(server.proc.pid)
    try:
        await _creates(server.url, 10)  # warm up
        polls, clients = await _idle_polls(server.url, waiters)
        await _quiet(cpu)
        before = cpu.cpu_times()
        took = await _creates(server.url, creates)
        after = cpu.cpu_times()
        spent = (after.user + after.system) - (before.user + before.system)
        for client in clients:
            await client.close()
        for poll in polls:
            poll.cancel()
        await asyncio.gather(*polls, return_exceptions=True)
        await _quiet(cpu)
        return took, spent / creates
    finally:
        server.stop()


def wake(scratch: Path, waiters: int = 1000, creates: int = 100) -> None:
    for count in (0, waiters):
        workdir = scratch / f"wake-{count}"
        workdir.mkdir(parents=True)
        server = ServerProcess(workdir, orchestrator=QUIET).start()
        took, cpu = asyncio.run(_wake_once(server, count, creates))
        ms = sorted(t * 1000 for t in took)
        print(
            f"create with {count:>5} idle long-polls: median {statistics.median(ms):7.1f} ms"
            f"  p90 {ms[int(len(ms) * 0.9)]:7.1f} ms  max {ms[-1]:7.1f} ms"
            f"  server CPU {cpu * 1000:6.1f} ms per create ({creates} creates)"
        )


# --- stuck: a task created after an agent died mid long-poll ---------------------------


def _status(admin: httpx.Client, agent_id: str) -> str | None:
    agents = admin.get("/api/v1/agents").json()["agents"]
    return next((a["status"] for a in agents if a["agent_id"] == agent_id), None)


def _beat(admin: httpx.Client, agent_id: str) -> str | None:
    agents = admin.get("/api/v1/agents").json()["agents"]
    return next((a["last_heartbeat_at"] for a in agents if a["agent_id"] == agent_id), None)


def _until(check: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError("bench: condition not reached")
        time.sleep(0.05)


def stuck(scratch: Path, task_timeout_secs: int = 60) -> None:
    workdir = scratch / "stuck"
    workdir.mkdir(parents=True)
    server = ServerProcess(workdir, orchestrator={"task_timeout_secs": task_timeout_secs}).start()
    agents = []
    try:
        with _client(server, ADMIN) as admin:
            doomed = start_agent(server, "doomed", workdir / "doomed")
            agents.append(doomed)
            _until(lambda: _status(admin, "doomed") == "online", 30)
            first = _beat(admin, "doomed")
            _until(lambda: _beat(admin, "doomed") != first, 30)  # its long-poll is open
            doomed.kill9()
            _until(lambda: _status(admin, "doomed") == "offline", 30)
            rescuer = start_agent(server, "rescuer", workdir / "rescuer")
            agents.append(rescuer)
            _until(lambda: _status(admin, "rescuer") == "online", 30)
            first = _beat(admin, "rescuer")
            _until(lambda: _beat(admin, "rescuer") != first, 30)
            body = {"title": "after the death", "prompt": "p"}
            task_id = admin.post("/api/v1/tasks", json=body).json()["task_id"]
            _until(
                lambda: admin.get(f"/api/v1/tasks/{task_id}").json()["agent_id"] == "rescuer",
                task_timeout_secs * 3,
            )
            events = admin.get(f"/api/v1/tasks/{task_id}/events").json()["events"]
    finally:
        for agent in agents:
            agent.stop(timeout=10)
        server.stop()
    created = _at(events[0]["at"])
    held = next(e for e in events if e["type"] == "task.assigned" and e["actor"] == "rescuer")
    path = " → ".join(f"{e['type'].removeprefix('task.')}({e['actor']})" for e in events)
    print(f"stuck: {(_at(held['at']) - created).total_seconds():.2f} s until a live agent held it")
    print(f"       {path}")


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


# --- wal: a long external reader, then it lets go --------------------------------------


def wal(scratch: Path, creates: int = 120) -> None:
    sqlite3 = shutil.which("sqlite3")
    if sqlite3 is None:
        raise SystemExit("bench: the sqlite3 shell is needed (apt-get install sqlite3)")
    workdir = scratch / "wal"
    workdir.mkdir(parents=True)
    server = ServerProcess(workdir, orchestrator=QUIET).start()
    wal_file = Path(f"{server.db_path}-wal")
    mib = 2**20
    try:
        reader = subprocess.Popen(  # noqa: S603 -- the sqlite3 shell on our own scratch file
            [sqlite3, str(server.db_path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert reader.stdin is not None and reader.stdout is not None
        reader.stdin.write("BEGIN; SELECT count(*) FROM events;\n")
        reader.stdin.flush()
        reader.stdout.readline()
        with _client(server, ADMIN) as admin:
            for _ in range(creates):
                body = {"title": "big", "prompt": "x" * 200_000}
                assert admin.post("/api/v1/tasks", json=body).status_code == 201
            grown = wal_file.stat().st_size
            reader.stdin.write("COMMIT;\n")
            reader.stdin.close()
            reader.wait(timeout=10)
            reader.stdout.close()
            time.sleep(5)  # no writes at all: the store must shrink it on its own
            idle = wal_file.stat().st_size
            for _ in range(10):
                admin.post("/api/v1/tasks", json={"title": "small", "prompt": "p"})
            time.sleep(2)
            after_writes = wal_file.stat().st_size
    finally:
        server.stop()
    print(f"wal: {grown / mib:.1f} MiB while the reader held its snapshot ({creates} creates)")
    print(f"     {idle / mib:.2f} MiB 5 s after it let go (no writes since)")
    print(f"     {after_writes / mib:.2f} MiB after 10 more writes")


# --- lock: reads while a foreign process holds the write lock ------------------------


def lock(scratch: Path) -> None:
    sqlite3 = shutil.which("sqlite3")
    if sqlite3 is None:
        raise SystemExit("bench: the sqlite3 shell is needed (apt-get install sqlite3)")
    workdir = scratch / "lock"
    workdir.mkdir(parents=True)
    server = ServerProcess(workdir, orchestrator=QUIET).start()
    try:
        holder = subprocess.Popen(  # noqa: S603 -- the sqlite3 shell on our own scratch file
            [sqlite3, str(server.db_path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert holder.stdin is not None and holder.stdout is not None
        holder.stdin.write("BEGIN IMMEDIATE;\nSELECT 'locked';\n")
        holder.stdin.flush()
        holder.stdout.readline()
        with _client(server, ADMIN) as admin:
            body = {"title": "waits", "prompt": "p"}
            writer = threading.Thread(target=lambda: admin.post("/api/v1/tasks", json=body))
            writer.start()  # waits on the server for the lock (busy_timeout 10 s)
            took = []
            for _ in range(15):  # three seconds of health checks meanwhile
                started = time.perf_counter()
                assert admin.get("/healthz").status_code == 200
                took.append(time.perf_counter() - started)
                time.sleep(0.2)
            holder.stdin.write("COMMIT;\n")
            holder.stdin.close()
            holder.wait(timeout=10)
            holder.stdout.close()
            writer.join(timeout=60)
    finally:
        server.stop()
    print(
        f"lock: GET /healthz behind a foreign write lock: median "
        f"{statistics.median(took) * 1000:.1f} ms, slowest {max(took) * 1000:.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.stuck")
    parser.add_argument("what", choices=["wake", "stuck", "wal", "lock", "all"])
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-stuck-"))
    try:
        if args.what in ("wake", "all"):
            wake(scratch)
        if args.what in ("stuck", "all"):
            stuck(scratch)
        if args.what in ("wal", "all"):
            wal(scratch)
        if args.what in ("lock", "all"):
            lock(scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
