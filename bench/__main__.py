"""`python -m bench` (`make bench`): the pull cycle on SQLite and, when a server answers,
on PostgreSQL with 1, 2 and 3 replicas. Writes bench/results/pull_cycle.{json,md}."""

import json
import os
import platform
import secrets
from pathlib import Path
from typing import Any

import psycopg

from bench.pull_cycle import run

RESULTS = Path(__file__).with_name("results")
PG_ADMIN = os.environ.get("AGENT_FLEET_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
SECONDS = float(os.environ.get("BENCH_SECONDS", "6"))


def _fresh_pg_database() -> str | None:
    name = f"agent_fleet_bench_{secrets.token_hex(3)}"
    try:
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as e:
        print(f"PostgreSQL column skipped: {e}")
        return None
    return f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}"


def _drop(url: str) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def main() -> None:
    rows: list[dict[str, Any]] = []
    for agents in (1, 16, 64):
        rows.append(run(agents=agents, seconds=SECONDS, processes=2))
        print(rows[-1])
    for replicas in (1, 2, 3):
        url = _fresh_pg_database()
        if url is None:
            break
        try:
            rows.append(run(agents=16, seconds=SECONDS, processes=2, db_url=url, replicas=replicas))
            print(rows[-1])
        finally:
            _drop(url)
    machine = {
        "python": platform.python_version(),
        "cores": os.cpu_count(),
        "machine": platform.machine(),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "pull_cycle.json").write_text(
        json.dumps({"machine": machine, "rows": rows}, indent=2)
    )
    lines = [
        f"machine: {machine}",
        "",
        "| store | replicas | agents | cycles/s | dequeue p50/p99 ms | status p50/p99 ms"
        " | complete p50/p99 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['store']} | {r['replicas']} | {r['agents']} | {r['cycles_per_sec']} | "
            f"{r.get('dequeue_p50_ms')}/{r.get('dequeue_p99_ms')} | "
            f"{r.get('status_p50_ms')}/{r.get('status_p99_ms')} | "
            f"{r.get('complete_p50_ms')}/{r.get('complete_p99_ms')} |"
        )
    table = "\n".join(lines)
    (RESULTS / "pull_cycle.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
