"""Profile the hot paths with py-spy (not part of `python -m bench`).

`python -m bench.profile pull`     — the server under 32 pull agents (SQLite)
`python -m bench.profile rebuild`  — `agent-fleet db rebuild` of 200,000 events

py-spy samples the server process (`record --format raw`, collapsed stacks);
the top functions by own time and by inclusive time are printed. Needs
`py-spy` (`$PY_SPY`, next to the interpreter, or on PATH) and ptrace permission.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.e2e.server import ServerProcess

from bench.common import scratch_dir, seed_sqlite
from bench.large_store import build_template, copy_template, template_top
from bench.pull_cycle import PRODUCT_HEARTBEAT, drive

#: py-spy: $PY_SPY, else next to the interpreter, else on PATH.
PY_SPY = os.environ.get("PY_SPY") or (
    str(Path(sys.executable).with_name("py-spy"))
    if Path(sys.executable).with_name("py-spy").exists()
    else shutil.which("py-spy") or "py-spy"
)


def summarize(collapsed: Path, top: int = 25) -> str:
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = [f.split(" (")[0] + " (" + f.split(" (")[-1] for f in stack.split(";")]
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    out = [f"{total} samples", "", "own time:"]
    out += [f"{n / total:6.1%}  {f}" for f, n in own.most_common(top)]
    out += ["", "inclusive time:"]
    out += [f"{n / total:6.1%}  {f}" for f, n in inclusive.most_common(top * 2)]
    return "\n".join(out)


def profile_pull(seconds: float, out: Path) -> None:
    tmp = scratch_dir("profile")
    seed_sqlite(tmp / "fleet.db", tasks=int(seconds * 400) + 2000)
    server = ServerProcess(
        tmp, orchestrator={"sweep_interval_secs": 1, **PRODUCT_HEARTBEAT}
    ).start()
    try:
        assert server.proc is not None
        spy = subprocess.Popen(  # noqa: S603 -- our own tool
            [PY_SPY, "record", "-p", str(server.proc.pid), "-f", "raw", "-o", str(out),
             "-d", str(int(seconds) + 2), "-r", "200", "--nonblocking"],
        )  # fmt: skip
        time.sleep(0.5)
        result = drive("pull", [server.url], 32, seconds)
        spy.wait(timeout=60)
        print(f"{result['per_sec']:.0f} cycles/s while sampled")
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def profile_rebuild(out: Path) -> None:
    tmp = scratch_dir("profile")
    server = ServerProcess(tmp)
    try:
        build_template(server.db_path, 1000)
        copy_template(server.db_path, template_top(server.db_path), 1, 50)
        server.write_config()
        subprocess.run(  # noqa: S603 -- our own tool
            [PY_SPY, "record", "-f", "raw", "-o", str(out), "-r", "200", "--",
             sys.executable, "-m", "agent_fleet", "db", "rebuild", "--config",
             str(server.config_path)],
            check=True,
        )  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("what", choices=("pull", "rebuild"))
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument(
        "--out", type=Path, default=Path(tempfile.gettempdir()) / "agent-fleet-profile.txt"
    )
    args = parser.parse_args()
    if args.what == "pull":
        profile_pull(args.seconds, args.out)
    else:
        profile_rebuild(args.out)
    print(summarize(args.out))


if __name__ == "__main__":
    main()
