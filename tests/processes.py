"""Every process a test starts ends with that test, however the test ends.

`spawn` starts a child process and remembers it. After each test the autouse
fixture in tests/conftest.py calls `reap`, which kills whatever is still running
and waits for it (so no child outlives its test, and no `Popen.__del__ ... still
running` warning fires later), then `kill_strays`, which kills what our children
started under the test's directory and left behind: detached agent runs, which
live in their own sessions on purpose. Fixtures and context managers still stop
their processes gracefully first; this is the net under them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import psutil

_LIVE: list[subprocess.Popen[Any]] = []


def spawn(argv: list[str], **popen: Any) -> subprocess.Popen[Any]:
    """`subprocess.Popen(argv, **popen)`, stopped at the latest when the test ends."""
    proc: subprocess.Popen[Any] = subprocess.Popen(argv, **popen)
    _LIVE.append(proc)
    return proc


def stop(proc: subprocess.Popen[Any], grace_secs: float = 30.0) -> int:
    """SIGTERM, up to `grace_secs` to end, then SIGKILL: its exit status (negative: a signal)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace_secs)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    _close_pipes(proc)
    return proc.returncode


def kill(proc: subprocess.Popen[Any]) -> None:
    """SIGKILL (it works on a stopped process too) and reap it."""
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    _close_pipes(proc)


def reap() -> list[str]:
    """Kill every process spawned since the last reap that still runs; their command lines."""
    left = []
    while _LIVE:
        proc = _LIVE.pop()
        if proc.poll() is None:
            left.append(_describe(proc.args))
        kill(proc)
    return left


def kill_strays(root: Path) -> list[str]:
    """Kill processes working under `root` or naming it on their command line (runs our
    children detached, which `reap` cannot see); their command lines."""
    mine = {os.getpid(), *(p.pid for p in psutil.Process().parents())}
    inside = str(root.resolve())
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "cwd"]):
        info = proc.info
        if info["pid"] in mine:
            continue
        cwd = info["cwd"] or ""
        cmdline = info["cmdline"] or []
        if cwd == inside or cwd.startswith(inside + os.sep) or any(inside in a for a in cmdline):
            found.append(proc)
    for proc in found:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(found, timeout=10)
    return [_describe(p.info["cmdline"] or [str(p.pid)]) for p in found]


def listens(pid: int, port: int) -> bool:
    """Whether process `pid` holds a listening TCP socket on `port`. A test waiting for its
    server asks this as well as for an answer: the port came from binding port 0 and
    letting go, so another test's server may hold it and answer in its place."""
    try:
        sockets = psutil.Process(pid).net_connections(kind="tcp")
    except psutil.Error:
        return False
    return any(s.status == psutil.CONN_LISTEN and s.laddr.port == port for s in sockets)


def _close_pipes(proc: subprocess.Popen[Any]) -> None:
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


def _describe(args: Any) -> str:
    words = [str(a) for a in args] if isinstance(args, list | tuple) else [str(args)]
    return " ".join(words)[:300]
