"""PostgreSQL scale-out: what each append waits for, with 1 and 2 replicas.

Two cores cannot show replicas adding throughput (the clients, the servers and
PostgreSQL share them), so this measures what would stop them: while the
PostgreSQL pull-cycle bench runs (16 agents, `agent-fleet serve` replicas), a
sampler reads `pg_stat_activity` of the bench database every few milliseconds
and counts the backends that are waiting, by wait event. By Little's law the
mean number of backends waiting on a lock, divided by the append rate, is the
mean time one append spends waiting on it:

    wait per append (ms) = mean waiting backends × 1000 / (events appended per second)

A global append lock shows as `Lock:advisory` waits that grow with the number
of replicas; per-row waits (`Lock:transactionid`, `Lock:tuple`) are the
per-stream conflicts every design has. `IO:WALSync`/`LWLock:WALWrite` is the
commit's flush: group commit spreads it over concurrent appenders.

    python -m bench.pg_scale --replicas 1 2 --seconds 6
"""

from __future__ import annotations

import argparse
import json
import shutil
import threading
import time
from collections import Counter
from typing import Any

import psycopg
from tests.e2e.server import ServerProcess

from bench.common import (
    Config,
    Section,
    drop_pg_database,
    fresh_pg_database,
    pg_available,
    scratch_dir,
    seed_postgres,
)
from bench.pull_cycle import WARMUP, drive

INTERVAL = 0.005  # seconds between samples (a sample is one small query)
MIN_RATE = 5.0  # appends/s below which a window says nothing (clients still starting)


class WaitSampler:
    """Samples the wait events of one database's backends on a thread of its own."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self.samples = 0
        self.waits: Counter[str] = Counter()
        self.events_start = 0
        self.events_end = 0
        self.seconds = 0.0

    def _events(self, conn: psycopg.Connection[Any]) -> int:
        row = conn.execute("SELECT count(*) FROM events").fetchone()
        return int(row[0]) if row else 0

    def _loop(self) -> None:
        with psycopg.connect(self._url, autocommit=True) as conn:
            self.events_start = self._events(conn)
            t0 = time.perf_counter()
            while not self._stop.is_set():
                rows = conn.execute(
                    "SELECT wait_event_type || ':' || wait_event FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                    "AND state = 'active' AND wait_event IS NOT NULL"
                ).fetchall()
                self.samples += 1
                self.waits.update(r[0] for r in rows)
                time.sleep(INTERVAL)
            self.seconds = time.perf_counter() - t0
            self.events_end = self._events(conn)

    def __enter__(self) -> WaitSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def summary(self) -> dict[str, Any]:
        appended = self.events_end - self.events_start
        rate = appended / self.seconds if self.seconds else 0.0
        mean = {k: v / max(1, self.samples) for k, v in self.waits.items()}
        judged = rate >= MIN_RATE
        per_append = {k: round(m * 1000 / rate, 3) for k, m in mean.items()} if judged else {}
        lock = sum(m for k, m in mean.items() if k.startswith("Lock:"))
        return {
            "samples": self.samples,
            "events_per_sec": round(rate, 1),
            "mean_waiting": {k: round(m, 3) for k, m in sorted(mean.items())},
            "wait_ms_per_append": dict(sorted(per_append.items())),
            "lock_wait_ms_per_append": round(lock * 1000 / rate, 3) if judged else None,
            "advisory_wait_ms_per_append": per_append.get("Lock:advisory", 0.0) if judged else None,
        }


def measure(replicas: int, seconds: float, agents: int = 16) -> dict[str, Any]:
    """One pull-cycle window on fresh replicas, sampled from the first to the last request."""
    url = fresh_pg_database("bench_pgscale")
    tmp = scratch_dir("pgscale")
    servers = []
    try:
        seed_postgres(url, int((seconds + WARMUP + 1) * 700) + 200)
        for n in range(replicas):
            (tmp / f"r{n}").mkdir()
            extra = {"sweep_interval_secs": 1, "db_url": url}
            servers.append(ServerProcess(tmp / f"r{n}", orchestrator=extra).start())
        with WaitSampler(url) as sampler:
            result = drive("pull", [s.url for s in servers], agents, seconds, 2)
        return {
            "replicas": replicas,
            "cycles_per_sec": round(result["per_sec"], 1),
            **sampler.summary(),
        }
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        drop_pg_database(url)


def bench(cfg: Config) -> Section:
    section = Section("pg_scale", "PostgreSQL: waits per append with 1 and 2 replicas")
    if not pg_available():
        section.notes.append("skipped: no server at AGENT_FLEET_TEST_PG_URL.")
        return section
    seconds = cfg.pick(cfg.seconds, 1.5)
    results: dict[int, list[dict[str, Any]]] = {}
    for _ in range(cfg.runs):
        for replicas in (1, 2):
            results.setdefault(replicas, []).append(measure(replicas, seconds))
    for replicas, rows in results.items():
        section.add(
            f"cycles_{replicas}r",
            f"pull cycles/s, {replicas} replica(s), 16 agents (sampled)",
            "cycles/s",
            [r["cycles_per_sec"] for r in rows],
        )
        section.checks[f"{replicas}r"] = rows
        judged = [r for r in rows if r["lock_wait_ms_per_append"] is not None]
        if not judged:  # no figure rather than a vacuous 0 ms
            section.notes.append(f"{replicas} replica(s): under {MIN_RATE} appends/s, not judged")
            continue
        section.add(
            f"advisory_wait_{replicas}r",
            f"  advisory-lock wait per append, {replicas} replica(s)",
            "ms",
            [r["advisory_wait_ms_per_append"] for r in judged],
            higher_is_better=False,
        )
        section.add(
            f"lock_wait_{replicas}r",
            f"  all lock waits per append, {replicas} replica(s)",
            "ms",
            [r["lock_wait_ms_per_append"] for r in judged],
            higher_is_better=False,
        )
    section.notes.append(
        f"{cfg.runs} runs of {seconds} s per replica count; pg_stat_activity sampled every "
        f"{INTERVAL * 1000:.0f} ms; wait per append = mean waiting backends / append rate."
    )
    return section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seconds", type=float, default=6)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    out = [measure(r, args.seconds) for _ in range(args.runs) for r in args.replicas]
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
