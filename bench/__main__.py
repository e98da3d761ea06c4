"""`python -m bench`: the benchmark suite (for now: the pull cycle at 1, 16 and 64 agents)."""

import json
import platform
from pathlib import Path

from bench.pull_cycle import run

RESULTS = Path(__file__).with_name("results")


def main() -> None:
    rows = [run(agents=n, seconds=8, processes=2) for n in (1, 16, 64)]
    machine = {"python": platform.python_version(), "cores": __import__("os").cpu_count()}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "pull_cycle.json").write_text(
        json.dumps({"machine": machine, "rows": rows}, indent=2)
    )
    print(f"machine: {machine}")
    print("| agents | cycles/s | dequeue p50/p99 ms | status p50/p99 ms | complete p50/p99 ms |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['agents']} | {r['cycles_per_sec']} | {r.get('dequeue_p50_ms')}/"
            f"{r.get('dequeue_p99_ms')} | {r.get('status_p50_ms')}/{r.get('status_p99_ms')} | "
            f"{r.get('complete_p50_ms')}/{r.get('complete_p99_ms')} |"
        )


if __name__ == "__main__":
    main()
