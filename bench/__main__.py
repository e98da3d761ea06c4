"""`python -m bench` (`make bench`): the whole benchmark suite in one run.

Modules (each a `bench(cfg) -> Section`), in order:

  pull       HTTP pull cycle, N = 1/16/32/64 agents (+ PostgreSQL) and a trivial FastAPI POST
  dispatch   creation (API and signed webhook) → held by a long-polling agent, at half load
  heartbeat  10,000 agents beating every 60 s: server CPU and latency
  store      SqliteEventStore in-process vs raw SQLite transactions
  large      db rebuild and restart at 1,000,000 events; RSS at 100,000 tasks
  peers      Huey, Procrastinate, PgQueuer vs our store, same work
  pg_scale   PostgreSQL: lock waits per append with 1 and 2 replicas (pg_stat_activity)
  soak       pull cycles per minute over 10 minutes while agents die and re-register
             (`--seconds` sets its length)

Every figure is the median of `--runs` runs (default 3) with min–max. Results go
to bench/results/latest.md and latest.json; the table is printed too.
"""

from __future__ import annotations

import argparse
import importlib
import json
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import SCRATCH, Config, Section, machine

RESULTS = Path(__file__).with_name("results")
MODULES = {
    "pull": "bench.pull_cycle",
    "dispatch": "bench.dispatch_latency",
    "heartbeat": "bench.heartbeat_scale",
    "store": "bench.event_store",
    "large": "bench.large_store",
    "peers": "bench.peers",
    "pg_scale": "bench.pg_scale",
    "soak": "bench.soak",
}


def _fig(sections: dict[str, Section], name: str, key: str) -> float | None:
    section = sections.get(name)
    if section is None:
        return None
    for metric in section.metrics:
        if metric.key == key:
            return metric.median
    return None


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def ratios(s: dict[str, Section]) -> list[tuple[str, float | None]]:
    pull32 = _fig(s, "pull", "sqlite_32") or _fig(s, "pull", "sqlite_16")
    trivial = _fig(s, "pull", "trivial_post")
    return [
        ("pull cycle requests/s (3 × cycles/s, 32 agents) ÷ trivial POST req/s",
         _ratio(3 * pull32 if pull32 else None, trivial)),
        ("pull cycles/s (32 agents) ÷ trivial POST req/s", _ratio(pull32, trivial)),
        ("trivial POST server CPU ÷ pull request server CPU (CPU per cycle ÷ 3, 32 agents)",
         _ratio(_fig(s, "pull", "trivial_post_cpu"),
                (_fig(s, "pull", "sqlite_32_cpu") or 0) / 3 or None)),
        ("soak: last ÷ first bucket's cycles/s", _fig(s, "soak", "ratio")),
        ("store appends/s ÷ raw FULL tx/s",
         _ratio(_fig(s, "store", "append"), _fig(s, "store", "raw_full"))),
        ("store claim+complete/s ÷ raw 2-commit limit (FULL)",
         _ratio(_fig(s, "store", "claim_complete"), _fig(s, "store", "raw_full_cycle"))),
        ("store claim+complete/s ÷ raw 2-commit limit (NORMAL, store also NORMAL)",
         _ratio(_fig(s, "store", "claim_complete_normal"),
                (_fig(s, "store", "raw_normal") or 0) / 2 or None)),
        ("ours (SQLite) ÷ Huey, same jobs",
         _ratio(_fig(s, "peers", "ours_sqlite"), _fig(s, "peers", "huey"))),
        ("store claim+complete/s ÷ Huey jobs/s",
         _ratio(_fig(s, "store", "claim_complete"), _fig(s, "peers", "huey"))),
        ("ours (PostgreSQL) ÷ Procrastinate",
         _ratio(_fig(s, "peers", "ours_pg"), _fig(s, "peers", "procrastinate"))),
        ("ours (PostgreSQL) ÷ PgQueuer",
         _ratio(_fig(s, "peers", "ours_pg"), _fig(s, "peers", "pgqueuer"))),
    ]  # fmt: skip


def goals(s: dict[str, Section]) -> list[tuple[str, str, bool | None]]:
    def check(
        value: float | None, ok: Callable[[float], bool], fmt: str
    ) -> tuple[str, bool | None]:
        if value is None:
            return "not measured", None
        return fmt.format(value), ok(value)

    out: list[tuple[str, str, bool | None]] = []
    cc = _ratio(_fig(s, "store", "claim_complete"), _fig(s, "store", "raw_full_cycle"))
    out.append(
        (
            "store claim+complete ≥ 50% of raw 2-commit limit",
            *check(cc, lambda v: v >= 0.5, "{:.0%}"),
        )
    )
    huey = _ratio(_fig(s, "peers", "ours_sqlite"), _fig(s, "peers", "huey"))
    out.append(
        ("store ahead of Huey (same jobs, same run)", *check(huey, lambda v: v > 1, "{:.2f}×"))
    )
    pull = _fig(s, "pull", "sqlite_32")
    trivial = _fig(s, "pull", "trivial_post")
    out.append(
        (
            "HTTP pull cycle, 32 agents ≥ 0.65× trivial POST (requests/s)",
            *check(_ratio(3 * pull if pull else None, trivial), lambda v: v >= 0.65, "{:.2f}×"),
        )
    )
    p99 = [_fig(s, "dispatch", "api_p99"), _fig(s, "dispatch", "webhook_p99")]
    worst = max((p for p in p99 if p is not None), default=None)
    out.append(
        (
            "creation→held p99 ≤ 25 ms at half load (worst of API, webhook)",
            *check(worst, lambda v: v <= 25, "{:.1f} ms"),
        )
    )
    out.append(
        (
            "10k agents at 60 s ≤ 10% of a core",
            *check(_fig(s, "heartbeat", "cpu_pct"), lambda v: v <= 10, "{:.1f}%"),
        )
    )
    out.append(
        (
            "1M-event rebuild ≤ 10 s",
            *check(_fig(s, "large", "rebuild_secs"), lambda v: v <= 10, "{:.1f} s"),
        )
    )
    out.append(
        (
            "restart ≤ 2 s at 1M events",
            *check(_fig(s, "large", "restart_secs"), lambda v: v <= 2, "{:.2f} s"),
        )
    )
    out.append(
        (
            "PostgreSQL ahead of Procrastinate (same jobs, same run)",
            *check(
                _ratio(_fig(s, "peers", "ours_pg"), _fig(s, "peers", "procrastinate")),
                lambda v: v >= 1,
                "{:.2f}×",
            ),
        )
    )
    out.append(
        (
            "PostgreSQL, 2 replicas: append-lock wait ≤ 1 ms per append",
            *check(_fig(s, "pg_scale", "advisory_wait_2r"), lambda v: v <= 1, "{:.2f} ms"),
        )
    )
    out.append(
        (
            "soak: last minute ≥ 0.8× the first (flat under agent churn)",
            *check(_fig(s, "soak", "ratio"), lambda v: v >= 0.8, "{:.2f}×"),
        )
    )
    counted = [s["pull"].checks.get("duplicate_assignments_total")] if "pull" in s else []
    if "soak" in s:
        counted.append(s["soak"].checks["soak"]["duplicate_assignments"])
    dups = sum(counted) if counted else None
    out.append(
        (
            "0 duplicate assignments in every pull and soak run",
            *check(dups, lambda v: v == 0, "{:.0f} duplicates"),
        )
    )
    return out  # fmt: skip


def _num(x: float) -> str:
    if x != x:
        return "n/a"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def render(
    info: dict[str, Any], sections: list[Section], errors: dict[str, str], cfg: Config
) -> str:
    by_name = {s.name: s for s in sections}
    lines = [
        "# Agent Fleet benchmarks — latest run",
        "",
        f"- when: {info['when']}, took {info['took_secs']:.0f} s"
        + (" (`--quick`: reduced sizes, figures not comparable)" if cfg.quick else ""),
        f"- machine: {info['machine']['cores']} cores, {info['machine']['machine']}, "
        f"{info['machine']['memory_gb']} GiB, {info['machine']['system']}; "
        f"Python {info['machine']['python']}",
        f"- code: {info['code']}",
        f"- each figure: median of {cfg.runs} runs, min–max in brackets",
        "",
        "| section | figure | median | min–max | unit |",
        "|---|---|---:|---:|---|",
    ]
    for s in sections:
        for m in s.metrics:
            lo, hi = (min(m.runs), max(m.runs)) if m.runs else (float("nan"),) * 2
            lines.append(
                f"| {s.name} | {m.label.strip()} | {_num(m.median)} | "
                f"{_num(lo)}–{_num(hi)} | {m.unit} |"
            )
    lines += ["", "## Ratios (of medians)", "", "| ratio | value |", "|---|---:|"]
    for label, value in ratios(by_name):
        lines.append(f"| {label} | {'n/a' if value is None else f'{value:.2f}'} |")
    lines += ["", "## Goals (issue #7)", "", "| goal | measured | met |", "|---|---:|---|"]
    for label, measured, ok in goals(by_name):
        mark = "—" if ok is None else ("yes" if ok else "**no**")
        if cfg.quick and ok is not None:
            mark = "— (`--quick` sizes: not judged)"
        lines.append(f"| {label} | {measured} | {mark} |")
    lines += ["", "## Notes", ""]
    for s in sections:
        for note in s.notes:
            lines.append(f"- {s.name}: {note}")
    for name, error in errors.items():
        lines.append(f"- {name}: FAILED — {error.strip().splitlines()[-1]}")
    return "\n".join(lines) + "\n"


def _code_version() -> str:
    root = Path(__file__).resolve().parents[1]
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 -- git from PATH
            capture_output=True,
            text=True,
            cwd=root,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"],  # noqa: S607
            capture_output=True,
            text=True,
            cwd=root,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    import agent_fleet

    where = Path(agent_fleet.__file__).resolve().parent
    return f"{rev}{' + uncommitted src changes' if dirty else ''} (agent_fleet from {where})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke test")
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(MODULES),
        metavar="NAME",
        help=f"run only this module (repeatable): {', '.join(MODULES)}",
    )
    parser.add_argument("--runs", type=int, default=None, help="runs per figure (default 3)")
    parser.add_argument("--seconds", type=float, default=None, help="pull-cycle window (4)")
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help="directory for latest.md / latest.json"
    )
    args = parser.parse_args(argv)
    cfg = Config(quick=args.quick, runs=1 if args.quick else 3)
    if args.runs:
        cfg = replace(cfg, runs=args.runs)
    if args.seconds:
        cfg = replace(cfg, seconds=args.seconds)
    names = args.only or list(MODULES)
    info: dict[str, Any] = {
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "code": _code_version(),
        "config": {"quick": cfg.quick, "runs": cfg.runs, "seconds": cfg.seconds},
    }
    m = info["machine"]
    print(f"machine: {m['cores']} cores, Python {m['python']}, {m['system']}", flush=True)
    print(f"code: {info['code']}", flush=True)
    started = time.monotonic()
    sections: list[Section] = []
    errors: dict[str, str] = {}
    for name in names:
        t0 = time.monotonic()
        print(f"== {name} …", flush=True)
        try:
            module = importlib.import_module(MODULES[name])
            section: Section = module.bench(cfg)
        except Exception:
            errors[name] = traceback.format_exc()
            print(errors[name], file=sys.stderr, flush=True)
            continue
        sections.append(section)
        for metric in section.metrics:
            lo, hi = min(metric.runs), max(metric.runs)
            print(
                f"   {metric.label.strip()}: {_num(metric.median)} "
                f"[{_num(lo)}–{_num(hi)}] {metric.unit}",
                flush=True,
            )
        print(f"   ({time.monotonic() - t0:.0f} s)", flush=True)
    info["took_secs"] = time.monotonic() - started
    shutil.rmtree(SCRATCH, ignore_errors=True)
    text = render(info, sections, errors, cfg)
    by_name = {s.name: s for s in sections}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.md").write_text(text)
    payload = {
        **info,
        "sections": [s.as_dict() for s in sections],
        "ratios": [{"label": k, "value": v} for k, v in ratios(by_name)],
        "goals": [{"goal": g, "measured": v, "met": ok} for g, v, ok in goals(by_name)],
        "errors": errors,
    }
    (args.out / "latest.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    print()
    print(text)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
